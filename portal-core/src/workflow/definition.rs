//! Workflow definitions: the declared state machine, built with a typed builder and checked once.
//!
//! A definition is written against the payload type `P` its instances carry, so guards
//! read typed fields (`quote.amount`), and is then *erased* into a [`WorkflowDefinition`]
//! that the service keeps in a registry beside definitions of other payload types. The
//! erased guard decodes the stored JSON payload into `P` before it runs; a payload that
//! no longer decodes fails the guard with an explanation instead of panicking.
//!
//! ```
//! use portal_core::workflow::{GuardFailure, WorkflowDefinition};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Refund {
//!     amount_cents: u64,
//! }
//!
//! let definition = WorkflowDefinition::builder::<Refund>("refund", 1)
//!     .resource("refunds")
//!     .initial("requested")
//!     .terminal("paid")
//!     .terminal("refused")
//!     .transition("pay", |t| {
//!         t.from("requested")
//!             .to("paid")
//!             .permission("refunds/*", "write")
//!             .guard("under_limit", |refund: &Refund, _ctx| {
//!                 if refund.amount_cents <= 50_000 {
//!                     Ok(())
//!                 } else {
//!                     Err(GuardFailure::new("refunds over 500.00 need a manager"))
//!                 }
//!             })
//!     })
//!     .transition("refuse", |t| t.from("requested").to("refused").permission("refunds/*", "write").input("reason"))
//!     .build()?;
//! assert!(definition.to_mermaid().contains("requested --> paid: pay"));
//! # Ok::<(), portal_core::workflow::DefinitionError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use crate::context::Principal;
use crate::ids::{OrgId, UserId};
use crate::tenancy::RoleName;

/// Why a guard refused a transition, in words support and the actor can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardFailure {
    /// What is wrong, lowercase, without a trailing period.
    pub reason: String,
}

impl GuardFailure {
    /// A refusal for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

impl fmt::Display for GuardFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What a guard may look at beside the payload: the instance and who is acting.
#[derive(Debug, Clone)]
pub struct GuardContext<'a> {
    /// The acting principal.
    pub actor: &'a Principal,
    /// The actor's roles in the instance's org.
    pub roles: &'a [RoleName],
    /// The instance's org.
    pub org: OrgId,
    /// The instance's current state.
    pub state: &'a str,
    /// The instance's assignee.
    pub assignee: Option<UserId>,
    /// Who created the instance.
    pub created_by: &'a Principal,
    /// The transition's input (a JSON object, or `null`).
    pub input: &'a serde_json::Value,
    /// The request's time.
    pub now: OffsetDateTime,
}

type ErasedGuard = Arc<dyn Fn(&serde_json::Value, &GuardContext<'_>) -> Result<(), GuardFailure> + Send + Sync>;
type PayloadCheck = Arc<dyn Fn(&serde_json::Value) -> Result<(), String> + Send + Sync>;

/// A named guard over the payload and the actor.
#[derive(Clone)]
pub struct Guard {
    name: String,
    check: ErasedGuard,
}

impl Guard {
    /// The guard's name, as refusals report it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the guard.
    ///
    /// # Errors
    ///
    /// The guard's [`GuardFailure`], or one saying the payload does not decode into the
    /// definition's payload type.
    pub fn check(&self, payload: &serde_json::Value, ctx: &GuardContext<'_>) -> Result<(), GuardFailure> {
        (self.check)(payload, ctx)
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A permission a transition asks for: an object pattern and an action, such as
/// `cases/*` `write`. A trailing `*` is replaced by the instance id when the service asks
/// the authorizer, so the request is for `cases/wf_…` and policy patterns apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RequiredPermission {
    /// The object pattern, such as `cases/*`.
    pub object: String,
    /// The action, such as `write`.
    pub action: String,
}

impl RequiredPermission {
    /// The concrete object asked for instance `id`: the pattern with a trailing `*`
    /// replaced by the id, or the pattern itself.
    pub fn object_for(&self, id: impl fmt::Display) -> String {
        match self.object.strip_suffix('*') {
            Some(prefix) => format!("{prefix}{id}"),
            None => self.object.clone(),
        }
    }
}

impl fmt::Display for RequiredPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.object, self.action)
    }
}

/// A transition's need for approvals: `required` approve votes from holders of
/// `permission`, and the transition a rejection fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRule {
    /// How many approve votes complete the transition.
    pub required: u32,
    /// What a voter must hold.
    pub permission: RequiredPermission,
    /// The transition a reject vote fires.
    pub on_reject: String,
}

/// One declared transition.
#[derive(Debug, Clone)]
pub struct Transition {
    name: String,
    from: BTreeSet<String>,
    to: String,
    permission: Option<RequiredPermission>,
    guards: Vec<Guard>,
    inputs: Vec<String>,
    approval: Option<ApprovalRule>,
}

impl Transition {
    /// Its name, unique in the definition.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The states it may leave.
    pub fn from(&self) -> impl Iterator<Item = &str> {
        self.from.iter().map(String::as_str)
    }

    /// Whether it may leave `state`.
    pub fn leaves(&self, state: &str) -> bool {
        self.from.contains(state)
    }

    /// The state it enters.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// The permission the actor must hold, if any.
    pub fn permission(&self) -> Option<&RequiredPermission> {
        self.permission.as_ref()
    }

    /// Its guards, in declaration order.
    pub fn guards(&self) -> &[Guard] {
        &self.guards
    }

    /// The input fields it requires.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Its approval rule, if it needs approvals.
    pub fn approval(&self) -> Option<&ApprovalRule> {
        self.approval.as_ref()
    }
}

/// One declared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSpec {
    name: String,
    terminal: bool,
    due_within: Option<Duration>,
}

impl StateSpec {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether no transition leaves it.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// How long an instance may stay in it, if bounded.
    pub fn due_within(&self) -> Option<Duration> {
        self.due_within
    }
}

/// A definition that breaks a rule of state machines; returned by
/// [`DefinitionBuilder::build`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// No state was declared initial.
    #[error("definition `{definition}` has no initial state")]
    NoInitialState {
        /// The definition.
        definition: String,
    },
    /// Two states were declared initial.
    #[error("definition `{definition}` has two initial states, `{first}` and `{second}`")]
    TwoInitialStates {
        /// The definition.
        definition: String,
        /// The first one.
        first: String,
        /// The second one.
        second: String,
    },
    /// A state or a transition name is declared twice.
    #[error("definition `{definition}` declares {what} `{name}` twice")]
    Duplicate {
        /// The definition.
        definition: String,
        /// `state` or `transition`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A transition names a state that was not declared.
    #[error("transition `{transition}` names the unknown state `{state}`")]
    UnknownState {
        /// The transition.
        transition: String,
        /// The state.
        state: String,
    },
    /// A transition has no `from` or no `to` state.
    #[error("transition `{transition}` needs at least one `from` state and a `to` state")]
    IncompleteTransition {
        /// The transition.
        transition: String,
    },
    /// A transition leaves a terminal state.
    #[error("transition `{transition}` leaves the terminal state `{state}`")]
    LeavesTerminal {
        /// The transition.
        transition: String,
        /// The state.
        state: String,
    },
    /// No path leads from the initial state to this state.
    #[error("state `{state}` cannot be reached from the initial state")]
    Unreachable {
        /// The state.
        state: String,
    },
    /// An approval rule needs zero votes, or names a rejection transition that does not
    /// exist, needs approvals itself, or cannot leave every state the approved one leaves.
    #[error("the approval rule of transition `{transition}` is invalid: {reason}")]
    InvalidApproval {
        /// The transition.
        transition: String,
        /// Why.
        reason: String,
    },
    /// A name is empty or longer than 64 bytes, or a duration is not positive.
    #[error("definition `{definition}`: {reason}")]
    Invalid {
        /// The definition.
        definition: String,
        /// Why.
        reason: String,
    },
}

/// A checked state machine, erased from its payload type so definitions of different
/// payloads share one registry. Cheap to clone.
#[derive(Clone)]
pub struct WorkflowDefinition {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    version: u32,
    resource: String,
    initial: String,
    states: BTreeMap<String, StateSpec>,
    state_order: Vec<String>,
    transitions: Vec<Transition>,
    payload_check: PayloadCheck,
}

impl fmt::Debug for WorkflowDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowDefinition")
            .field("name", &self.inner.name)
            .field("version", &self.inner.version)
            .field("states", &self.inner.state_order)
            .field(
                "transitions",
                &self.inner.transitions.iter().map(Transition::name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl WorkflowDefinition {
    /// Starts a definition named `name` (such as `support_case`) at `version`, whose
    /// instances carry a payload of type `P`. Use `serde_json::Value` for an untyped one.
    pub fn builder<P>(name: impl Into<String>, version: u32) -> DefinitionBuilder<P>
    where
        P: Serialize + DeserializeOwned + 'static,
    {
        let name = name.into();
        DefinitionBuilder {
            resource: name.clone(),
            name,
            version,
            initial: Vec::new(),
            states: Vec::new(),
            dues: Vec::new(),
            transitions: Vec::new(),
            _payload: PhantomData,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The version; an instance keeps the version it started under.
    pub fn version(&self) -> u32 {
        self.inner.version
    }

    /// The resource name its permissions are about, such as `cases`: reading an instance
    /// asks `<resource>/<id> read`, creating one asks `<resource>/* create`.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The initial state.
    pub fn initial(&self) -> &str {
        &self.inner.initial
    }

    /// The states, in declaration order.
    pub fn states(&self) -> impl Iterator<Item = &StateSpec> {
        self.inner
            .state_order
            .iter()
            .filter_map(|name| self.inner.states.get(name))
    }

    /// The state `name`, if declared.
    pub fn state(&self, name: &str) -> Option<&StateSpec> {
        self.inner.states.get(name)
    }

    /// The transitions, in declaration order.
    pub fn transitions(&self) -> &[Transition] {
        &self.inner.transitions
    }

    /// The transition `name`, if declared.
    pub fn transition(&self, name: &str) -> Option<&Transition> {
        self.inner.transitions.iter().find(|t| t.name == name)
    }

    /// Checks that `payload` decodes into the definition's payload type.
    ///
    /// # Errors
    ///
    /// The decoder's message when it does not.
    pub fn check_payload(&self, payload: &serde_json::Value) -> Result<(), String> {
        (self.inner.payload_check)(payload)
    }

    /// The definition as a Mermaid `stateDiagram-v2`: `[*]` into the initial state,
    /// terminal states into `[*]`, one edge per transition and source state labelled
    /// with its name (and its approval count), and a note per state with a due time.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        out.push_str(&format!("    [*] --> {}\n", self.inner.initial));
        for transition in &self.inner.transitions {
            let label = match &transition.approval {
                Some(rule) => format!("{} ({} approvals)", transition.name, rule.required),
                None => transition.name.clone(),
            };
            for from in &transition.from {
                out.push_str(&format!("    {from} --> {}: {label}\n", transition.to));
            }
        }
        for state in self.states() {
            if state.terminal {
                out.push_str(&format!("    {} --> [*]\n", state.name));
            }
            if let Some(due) = state.due_within {
                out.push_str(&format!(
                    "    note right of {}: due within {}s\n",
                    state.name,
                    due.whole_seconds()
                ));
            }
        }
        out
    }
}

/// Builds a [`WorkflowDefinition`] for payload type `P`; see
/// [`WorkflowDefinition::builder`].
#[must_use]
pub struct DefinitionBuilder<P> {
    name: String,
    version: u32,
    resource: String,
    initial: Vec<String>,
    states: Vec<(String, bool)>,
    dues: Vec<(String, Duration)>,
    transitions: Vec<TransitionBuilder<P>>,
    _payload: PhantomData<fn() -> P>,
}

impl<P> fmt::Debug for DefinitionBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefinitionBuilder")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl<P> DefinitionBuilder<P>
where
    P: Serialize + DeserializeOwned + 'static,
{
    /// The resource name permissions are about; the definition's name by default.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = resource.into();
        self
    }

    /// Declares the initial state (exactly one definition state is initial).
    pub fn initial(mut self, state: impl Into<String>) -> Self {
        let state = state.into();
        self.initial.push(state.clone());
        self.states.push((state, false));
        self
    }

    /// Declares a state.
    pub fn state(mut self, state: impl Into<String>) -> Self {
        self.states.push((state.into(), false));
        self
    }

    /// Declares a terminal state: no transition may leave it.
    pub fn terminal(mut self, state: impl Into<String>) -> Self {
        self.states.push((state.into(), true));
        self
    }

    /// Bounds how long an instance may stay in `state`; it is overdue afterwards.
    pub fn due_within(mut self, state: impl Into<String>, within: Duration) -> Self {
        self.dues.push((state.into(), within));
        self
    }

    /// Declares the transition `name`, configured by `configure`.
    pub fn transition(
        mut self,
        name: impl Into<String>,
        configure: impl FnOnce(TransitionBuilder<P>) -> TransitionBuilder<P>,
    ) -> Self {
        let builder = TransitionBuilder {
            name: name.into(),
            from: Vec::new(),
            to: None,
            permission: None,
            guards: Vec::new(),
            inputs: Vec::new(),
            approval: None,
            _payload: PhantomData,
        };
        self.transitions.push(configure(builder));
        self
    }

    /// Checks the definition and erases its payload type.
    ///
    /// # Errors
    ///
    /// A [`DefinitionError`] for: no or two initial states, a state or transition declared
    /// twice, a transition naming an unknown state or leaving a terminal state, a state
    /// unreachable from the initial one, an invalid approval rule, an empty or overlong
    /// name, or a non-positive due time.
    pub fn build(self) -> Result<WorkflowDefinition, DefinitionError> {
        let definition = self.name.clone();
        let invalid = |reason: String| DefinitionError::Invalid {
            definition: definition.clone(),
            reason,
        };
        for name in [&self.name, &self.resource] {
            if name.is_empty() || name.len() > 64 {
                return Err(invalid(format!("the name `{name}` must be 1 to 64 bytes")));
            }
        }
        let initial = match self.initial.as_slice() {
            [] => return Err(DefinitionError::NoInitialState { definition }),
            [one] => one.clone(),
            [first, second, ..] => {
                return Err(DefinitionError::TwoInitialStates {
                    definition,
                    first: first.clone(),
                    second: second.clone(),
                });
            }
        };
        let mut states = BTreeMap::new();
        let mut state_order = Vec::new();
        for (name, terminal) in self.states {
            if name.is_empty() || name.len() > 64 {
                return Err(invalid(format!("the state name `{name}` must be 1 to 64 bytes")));
            }
            if states.contains_key(&name) {
                return Err(DefinitionError::Duplicate {
                    definition,
                    what: "state",
                    name,
                });
            }
            state_order.push(name.clone());
            states.insert(
                name.clone(),
                StateSpec {
                    name,
                    terminal,
                    due_within: None,
                },
            );
        }
        for (name, within) in self.dues {
            if !within.is_positive() {
                return Err(invalid(format!("the due time of `{name}` must be positive")));
            }
            let Some(state) = states.get_mut(&name) else {
                return Err(invalid(format!("a due time names the unknown state `{name}`")));
            };
            state.due_within = Some(within);
        }
        let mut transitions: Vec<Transition> = Vec::new();
        for builder in self.transitions {
            let transition = builder.finish()?;
            if transitions.iter().any(|t| t.name == transition.name) {
                return Err(DefinitionError::Duplicate {
                    definition,
                    what: "transition",
                    name: transition.name,
                });
            }
            for state in transition.from.iter().chain(std::iter::once(&transition.to)) {
                let Some(spec) = states.get(state) else {
                    return Err(DefinitionError::UnknownState {
                        transition: transition.name.clone(),
                        state: state.clone(),
                    });
                };
                if spec.terminal && transition.from.contains(state) {
                    return Err(DefinitionError::LeavesTerminal {
                        transition: transition.name.clone(),
                        state: state.clone(),
                    });
                }
            }
            transitions.push(transition);
        }
        check_approvals(&transitions)?;
        check_reachable(&initial, &state_order, &transitions)?;
        let payload_check: PayloadCheck =
            Arc::new(|payload: &serde_json::Value| P::deserialize(payload).map(drop).map_err(|err| err.to_string()));
        Ok(WorkflowDefinition {
            inner: Arc::new(Inner {
                name: self.name,
                version: self.version,
                resource: self.resource,
                initial,
                states,
                state_order,
                transitions,
                payload_check,
            }),
        })
    }
}

fn check_approvals(transitions: &[Transition]) -> Result<(), DefinitionError> {
    for transition in transitions {
        let Some(rule) = &transition.approval else {
            continue;
        };
        let fail = |reason: &str| DefinitionError::InvalidApproval {
            transition: transition.name.clone(),
            reason: reason.to_owned(),
        };
        if rule.required == 0 {
            return Err(fail("it must require at least one approval"));
        }
        let Some(reject) = transitions.iter().find(|t| t.name == rule.on_reject) else {
            return Err(fail("the rejection transition does not exist"));
        };
        if reject.approval.is_some() {
            return Err(fail("the rejection transition needs approvals itself"));
        }
        if !transition.from.is_subset(&reject.from) {
            return Err(fail(
                "the rejection transition cannot leave every state this one leaves",
            ));
        }
    }
    Ok(())
}

fn check_reachable(initial: &str, order: &[String], transitions: &[Transition]) -> Result<(), DefinitionError> {
    let mut seen = BTreeSet::from([initial.to_owned()]);
    let mut queue = VecDeque::from([initial.to_owned()]);
    while let Some(state) = queue.pop_front() {
        for transition in transitions.iter().filter(|t| t.from.contains(&state)) {
            if seen.insert(transition.to.clone()) {
                queue.push_back(transition.to.clone());
            }
        }
    }
    match order.iter().find(|state| !seen.contains(*state)) {
        Some(state) => Err(DefinitionError::Unreachable { state: state.clone() }),
        None => Ok(()),
    }
}

/// Configures one transition; see [`DefinitionBuilder::transition`].
#[must_use]
pub struct TransitionBuilder<P> {
    name: String,
    from: Vec<String>,
    to: Option<String>,
    permission: Option<RequiredPermission>,
    guards: Vec<Guard>,
    inputs: Vec<String>,
    approval: Option<(u32, RequiredPermission, String)>,
    _payload: PhantomData<fn() -> P>,
}

impl<P> fmt::Debug for TransitionBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitionBuilder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<P> TransitionBuilder<P>
where
    P: Serialize + DeserializeOwned + 'static,
{
    /// A state the transition may leave; call it once per state for several.
    pub fn from(mut self, state: impl Into<String>) -> Self {
        self.from.push(state.into());
        self
    }

    /// Several states the transition may leave.
    pub fn from_any<S: Into<String>>(mut self, states: impl IntoIterator<Item = S>) -> Self {
        self.from.extend(states.into_iter().map(Into::into));
        self
    }

    /// The state it enters.
    pub fn to(mut self, state: impl Into<String>) -> Self {
        self.to = Some(state.into());
        self
    }

    /// The permission the actor must hold, such as `cases/*` `write`.
    pub fn permission(mut self, object: impl Into<String>, action: impl Into<String>) -> Self {
        self.permission = Some(RequiredPermission {
            object: object.into(),
            action: action.into(),
        });
        self
    }

    /// An input field the caller must send (present and not `null`).
    pub fn input(mut self, field: impl Into<String>) -> Self {
        self.inputs.push(field.into());
        self
    }

    /// A named guard over the typed payload and the [`GuardContext`]. Guards run in
    /// declaration order; the first refusal is reported with the guard's name.
    pub fn guard<F>(mut self, name: impl Into<String>, guard: F) -> Self
    where
        F: Fn(&P, &GuardContext<'_>) -> Result<(), GuardFailure> + Send + Sync + 'static,
    {
        let check: ErasedGuard = Arc::new(move |payload: &serde_json::Value, ctx: &GuardContext<'_>| {
            let typed = P::deserialize(payload)
                .map_err(|err| GuardFailure::new(format!("the payload does not decode: {err}")))?;
            guard(&typed, ctx)
        });
        self.guards.push(Guard {
            name: name.into(),
            check,
        });
        self
    }

    /// Requires `required` approve votes from holders of `object action` before the
    /// transition happens; a reject vote fires the transition `on_reject` instead. The
    /// instance's creator cannot vote, and each voter votes once.
    pub fn approvals(
        mut self,
        required: u32,
        object: impl Into<String>,
        action: impl Into<String>,
        on_reject: impl Into<String>,
    ) -> Self {
        let permission = RequiredPermission {
            object: object.into(),
            action: action.into(),
        };
        self.approval = Some((required, permission, on_reject.into()));
        self
    }

    fn finish(self) -> Result<Transition, DefinitionError> {
        let incomplete = || DefinitionError::IncompleteTransition {
            transition: self.name.clone(),
        };
        if self.name.is_empty() || self.name.len() > 64 {
            return Err(DefinitionError::Invalid {
                definition: String::new(),
                reason: format!("the transition name `{}` must be 1 to 64 bytes", self.name),
            });
        }
        let to = self.to.clone().ok_or_else(incomplete)?;
        if self.from.is_empty() {
            return Err(incomplete());
        }
        Ok(Transition {
            from: self.from.into_iter().collect(),
            to,
            permission: self.permission,
            guards: self.guards,
            inputs: self.inputs,
            approval: self.approval.map(|(required, permission, on_reject)| ApprovalRule {
                required,
                permission,
                on_reject,
            }),
            name: self.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Json = serde_json::Value;

    fn base() -> DefinitionBuilder<Json> {
        WorkflowDefinition::builder::<Json>("case", 1)
            .initial("open")
            .state("working")
            .terminal("done")
            .transition("start", |t| t.from("open").to("working"))
            .transition("finish", |t| t.from("working").to("done"))
    }

    #[test]
    fn a_sound_definition_builds() {
        let def = base().build().unwrap();
        assert_eq!(def.initial(), "open");
        assert_eq!(def.transition("start").unwrap().to(), "working");
        assert_eq!(def.states().count(), 3);
    }

    #[test]
    fn no_initial_state_is_an_error() {
        let err = WorkflowDefinition::builder::<Json>("x", 1)
            .state("a")
            .build()
            .unwrap_err();
        assert!(matches!(err, DefinitionError::NoInitialState { .. }), "{err:?}");
    }

    #[test]
    fn two_initial_states_are_an_error() {
        let err = base().initial("again").build().unwrap_err();
        assert!(matches!(err, DefinitionError::TwoInitialStates { .. }), "{err:?}");
    }

    #[test]
    fn duplicate_states_and_transitions_are_errors() {
        let err = base().state("working").build().unwrap_err();
        assert!(
            matches!(err, DefinitionError::Duplicate { what: "state", .. }),
            "{err:?}"
        );
        let err = base()
            .transition("start", |t| t.from("open").to("done"))
            .build()
            .unwrap_err();
        assert!(
            matches!(err, DefinitionError::Duplicate { what: "transition", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_states_in_transitions_are_errors() {
        let err = base()
            .transition("jump", |t| t.from("open").to("nowhere"))
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            DefinitionError::UnknownState {
                transition: "jump".into(),
                state: "nowhere".into()
            }
        );
    }

    #[test]
    fn leaving_a_terminal_state_is_an_error() {
        let err = base()
            .transition("undo", |t| t.from("done").to("open"))
            .build()
            .unwrap_err();
        assert!(matches!(err, DefinitionError::LeavesTerminal { .. }), "{err:?}");
    }

    #[test]
    fn unreachable_states_are_errors() {
        let err = base().state("limbo").build().unwrap_err();
        assert_eq!(err, DefinitionError::Unreachable { state: "limbo".into() });
    }

    #[test]
    fn transitions_need_from_and_to() {
        let err = base().transition("half", |t| t.to("done")).build().unwrap_err();
        assert!(matches!(err, DefinitionError::IncompleteTransition { .. }), "{err:?}");
    }

    #[test]
    fn approval_rules_need_a_rejection_that_leaves_the_same_states() {
        let err = base()
            .transition("approve", |t| {
                t.from("working").to("done").approvals(2, "x/*", "approve", "nope")
            })
            .build()
            .unwrap_err();
        assert!(matches!(err, DefinitionError::InvalidApproval { .. }), "{err:?}");
        let err = base()
            .transition("approve", |t| {
                t.from("working").to("done").approvals(0, "x/*", "approve", "start")
            })
            .build()
            .unwrap_err();
        assert!(matches!(err, DefinitionError::InvalidApproval { .. }), "{err:?}");
        let err = base()
            .transition("approve", |t| {
                t.from("working").to("done").approvals(1, "x/*", "approve", "start")
            })
            .build()
            .unwrap_err();
        assert!(matches!(err, DefinitionError::InvalidApproval { .. }), "{err:?}");
    }

    #[test]
    fn due_times_must_be_positive_and_name_known_states() {
        assert!(base().due_within("open", Duration::ZERO).build().is_err());
        assert!(base().due_within("nope", Duration::hours(1)).build().is_err());
        let def = base().due_within("open", Duration::hours(1)).build().unwrap();
        assert_eq!(def.state("open").unwrap().due_within(), Some(Duration::hours(1)));
    }

    #[test]
    fn mermaid_lists_every_edge_and_the_end_states() {
        let def = base()
            .transition("reopen", |t| t.from_any(["working"]).to("open"))
            .build()
            .unwrap();
        let diagram = def.to_mermaid();
        assert!(diagram.starts_with("stateDiagram-v2\n    [*] --> open\n"));
        assert!(diagram.contains("    open --> working: start\n"));
        assert!(diagram.contains("    working --> open: reopen\n"));
        assert!(diagram.contains("    done --> [*]\n"));
    }

    #[test]
    fn typed_guards_see_the_payload_and_explain_refusals() {
        #[derive(Serialize, serde::Deserialize)]
        struct Quote {
            amount: u64,
        }
        let def = WorkflowDefinition::builder::<Quote>("quote", 1)
            .initial("draft")
            .terminal("sent")
            .transition("send", |t| {
                t.from("draft").to("sent").guard("small", |q: &Quote, _| {
                    if q.amount < 10 {
                        Ok(())
                    } else {
                        Err(GuardFailure::new("too big"))
                    }
                })
            })
            .build()
            .unwrap();
        let guard = &def.transition("send").unwrap().guards()[0];
        let actor = Principal::Service(crate::context::ServiceName::new("t").unwrap());
        let ctx = GuardContext {
            actor: &actor,
            roles: &[],
            org: OrgId::from_uuid(uuid::Uuid::nil()),
            state: "draft",
            assignee: None,
            created_by: &actor,
            input: &Json::Null,
            now: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(guard.check(&serde_json::json!({ "amount": 3 }), &ctx), Ok(()));
        assert_eq!(
            guard
                .check(&serde_json::json!({ "amount": 30 }), &ctx)
                .unwrap_err()
                .reason,
            "too big"
        );
        assert!(guard.check(&serde_json::json!({ "nope": 1 }), &ctx).is_err());
        assert!(def.check_payload(&serde_json::json!({ "amount": 1 })).is_ok());
        assert!(def.check_payload(&serde_json::json!("x")).is_err());
    }
}
