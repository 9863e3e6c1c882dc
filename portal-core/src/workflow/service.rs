//! `WorkflowService`: create, read, list and move workflow instances, each step
//! authorized, validated, atomic, idempotent and recorded.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;

use super::cache::{self, InstanceCache};
use super::definition::{RequiredPermission, Transition, WorkflowDefinition};
use super::idempotency::{Outcome, Worked, idempotency_record, key_reused, name_key};
use super::in_flight::InFlight;
use super::requests::{AvailableTransition, Edits, NewInstance, Refusal, TransitionCheck, VoteRequest, WorkflowFilter};
use super::rules::{
    check_guards, check_input, check_state, check_voter, due_at, enter, not_found, unknown_transition, version_conflict,
};
use super::{
    Applied, CreateRecord, Delegation, EntryKind, HistoryEntry, Instance, ListFilter, TransitionRecord, Vote,
    VoteDecision, WorkflowStore, fingerprint,
};
use crate::access::{Domain, RoleName};
use crate::audit::{AuditActor, AuditEvent, AuditTarget, CatalogEntry, actions};
use crate::context::{Principal, RequestContext};
use crate::diagnostics::{Detail, EventKind};
use crate::error::{ConfigError, ErrorCode, PortalError};
use crate::gate::{Gate, Operation, Verdict, denied};
use crate::ids::{IdGenerator, OrgId, UserId, WorkflowId};
use crate::store::{Page, PageRequest};
use crate::tenancy::TenancyStore;

/// The workflow use cases.
///
/// Every operation follows the path of the crate: the actor's membership (an org the
/// actor is not a member of answers `workflow.not_found`, like an unknown instance), the
/// [`Authorizer`](crate::access::Authorizer), validation, one atomic store call, a
/// diagnostic event, and a typed result or a [`PortalError`] with a stable code.
///
/// Permissions come from the definition: reading an instance asks `<resource>/<id>
/// read`, creating one `<resource>/* create`, and a transition asks the permission it
/// declares (`<resource>/* write` when it declares none), with a trailing `*` replaced
/// by the instance id.
///
/// The service (and its clones) keeps the last version it read or committed of up to
/// 1024 instances, so a transition or vote from the version a client last received
/// checks against that copy instead of reading the instance again. A version's content
/// never changes, and the store's version check in `apply` remains the authority on
/// whether it is still current: a copy another replica made stale costs a refused
/// `apply` and a read, never a wrong answer. The actor's membership is read on every
/// call, never cached, so a removed member or role loses access at once.
///
/// The service (and its clones) also knows which idempotency keys its requests are
/// working on, so a duplicate of a request still in progress in this process is refused
/// with `idempotency.in_flight` at once; the key itself is claimed by the one store call
/// that commits the request (see [`transition`](Self::transition)).
#[derive(Clone)]
pub struct WorkflowService {
    pub(super) store: Arc<dyn WorkflowStore>,
    tenancy: Arc<dyn TenancyStore>,
    pub(super) gate: Gate,
    ids: Arc<dyn IdGenerator>,
    definitions: Arc<BTreeMap<(String, u32), WorkflowDefinition>>,
    instances: Arc<InstanceCache>,
    pub(super) in_flight: Arc<InFlight>,
}

/// A transition, a vote or an assignment: the requests that end in [`WorkflowStore::apply`].
enum Step<'a> {
    /// [`WorkflowService::transition_with`].
    Transition {
        name: &'a str,
        expected_version: u64,
        input: &'a serde_json::Value,
        edits: &'a Edits,
    },
    /// [`WorkflowService::vote`].
    Vote(&'a VoteRequest),
    /// [`WorkflowService::assign`].
    Assign {
        expected_version: u64,
        assignee: Option<UserId>,
    },
}

impl Step<'_> {
    /// The instance version the request was made against.
    fn expected_version(&self) -> u64 {
        match self {
            Step::Transition { expected_version, .. } | Step::Assign { expected_version, .. } => *expected_version,
            Step::Vote(vote) => vote.expected_version,
        }
    }
}

impl std::fmt::Debug for WorkflowService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowService")
            .field("definitions", &self.definitions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WorkflowService {
    /// Assembles the service from its ports, the portal's [`Gate`] and the definitions it
    /// runs.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DuplicateDefinition`] if two definitions share a name and a version.
    pub fn new(
        store: Arc<dyn WorkflowStore>,
        tenancy: Arc<dyn TenancyStore>,
        gate: Gate,
        ids: Arc<dyn IdGenerator>,
        definitions: impl IntoIterator<Item = WorkflowDefinition>,
    ) -> Result<Self, ConfigError> {
        let mut registry = BTreeMap::new();
        for definition in definitions {
            let key = (definition.name().to_owned(), definition.version());
            if let Some(twin) = registry.insert(key, definition) {
                return Err(ConfigError::DuplicateDefinition {
                    name: twin.name().to_owned(),
                    version: twin.version(),
                });
            }
        }
        Ok(Self {
            store,
            tenancy,
            gate,
            ids,
            definitions: Arc::new(registry),
            instances: Arc::new(InstanceCache::new(cache::CAPACITY)),
            in_flight: Arc::new(InFlight::default()),
        })
    }

    /// Every definition the service runs, each version.
    pub fn definitions(&self) -> impl Iterator<Item = &WorkflowDefinition> {
        self.definitions.values()
    }

    /// The latest version of the definition `name`.
    pub fn definition(&self, name: &str) -> Option<&WorkflowDefinition> {
        self.definitions
            .range((name.to_owned(), 0)..=(name.to_owned(), u32::MAX))
            .next_back()
            .map(|(_, d)| d)
    }

    /// The latest version of every definition the service runs, by name, for a caller of
    /// `org`: what a screen shows of the state machine (states, transitions, Mermaid).
    /// Definitions are the deployment's, the same in every org; asking through an org lets
    /// the gate decide and record it. Asks `org read`.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` if the actor cannot reach `org`; `access.denied`; `storage.*`.
    pub async fn definitions_in(
        &self,
        ctx: &RequestContext,
        org: OrgId,
    ) -> Result<Vec<&WorkflowDefinition>, PortalError> {
        let op = self.op(ctx, "workflow.definition.list");
        let result = async {
            self.gate
                .authorize(ctx, org, crate::access::permissions::ORG_READ, not_found)
                .await?;
            let mut latest: BTreeMap<&str, &WorkflowDefinition> = BTreeMap::new();
            for definition in self.definitions.values() {
                // The registry is ordered by (name, version): the last of a name wins.
                latest.insert(definition.name(), definition);
            }
            Ok(latest.into_values().collect::<Vec<_>>())
        }
        .await;
        op.in_org(org)
            .finish(&result, |d: &Vec<&WorkflowDefinition>| json!({ "count": d.len() }));
        result
    }

    /// The latest version of the definition `name`, for a caller of `org`. Asks `org read`.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` if the actor cannot reach `org`, or (param `definition`) for a
    /// name the service does not run; `access.denied`; `storage.*`.
    pub async fn definition_in(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        name: &str,
    ) -> Result<&WorkflowDefinition, PortalError> {
        let op = self.op(ctx, "workflow.definition.read");
        let result = async {
            self.gate
                .authorize(ctx, org, crate::access::permissions::ORG_READ, not_found)
                .await?;
            self.definition(name).ok_or_else(|| {
                PortalError::new(ErrorCode::WorkflowNotFound, "no workflow definition of that name")
                    .with_param("definition")
            })
        }
        .await;
        op.in_org(org).finish(
            &result,
            |d: &&WorkflowDefinition| json!({ "definition": d.name(), "version": d.version() }),
        );
        result
    }

    /// Creates an instance in the definition's initial state, at version 1, with a
    /// `created` history entry. Asks `<resource>/* create`.
    ///
    /// With an idempotency key in `ctx`, creation is idempotent as transitions are: the
    /// same request again (same org, definition, payload and assignee) returns the
    /// instance the first one created, a duplicate while the first is still in flight is
    /// `idempotency.in_flight`, and another request under the key is refused.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` if the actor is not a member of `org`; `access.denied`;
    /// `validation.invalid_field` (`definition` unknown, `payload` of the wrong shape,
    /// `assignee` not a member); `idempotency.in_flight`; `idempotency.key_reused`;
    /// `storage.*`.
    pub async fn create(&self, ctx: &RequestContext, org: OrgId, new: NewInstance) -> Result<Instance, PortalError> {
        let op = self.op(ctx, "workflow.create");
        let request = json!({
            "op": "create", "org": org, "definition": new.definition, "payload": new.payload,
            "assignee": new.assignee,
        });
        let fingerprint = fingerprint(&request);
        let result = self
            .with_key(ctx, org, fingerprint, async {
                let mut decisions = Vec::new();
                let outcome = self.create_step(ctx, org, &new, fingerprint, &mut decisions).await;
                (outcome, decisions)
            })
            .await;
        op.in_org(org).finish(
            &result,
            |i| json!({ "id": i.id, "definition": i.definition, "state": i.state }),
        );
        result
    }

    /// The checks and the store call of [`create`](Self::create).
    async fn create_step(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        new: &NewInstance,
        fingerprint: [u8; 32],
        decisions: &mut Vec<Verdict>,
    ) -> Result<Outcome, PortalError> {
        let roles = self.member_roles(ctx, org).await?;
        let definition = self.definition(&new.definition).ok_or_else(|| {
            PortalError::invalid_field("definition", format!("no workflow named `{}`", new.definition))
        })?;
        let object = format!("{}/*", definition.resource());
        let verdict = self
            .gate
            .evaluate_as(ctx, ctx.principal(), Domain::Org(org), &roles, &object, "create")?;
        let allowed = verdict.allowed();
        decisions.push(verdict);
        if !allowed {
            return Err(denied());
        }
        definition
            .check_payload(&new.payload)
            .map_err(|err| PortalError::invalid_field("payload", err))?;
        self.check_assignee(org, new.assignee).await?;
        let now = ctx.now();
        let initial = definition.initial().to_owned();
        let instance = Instance {
            id: WorkflowId::generate(&*self.ids, now),
            org,
            definition: definition.name().to_owned(),
            definition_version: definition.version(),
            state: initial.clone(),
            version: 1,
            assignee: new.assignee,
            payload: new.payload.clone(),
            created_by: ctx.principal().clone(),
            created_at: now,
            updated_at: now,
            state_entered_at: now,
            due_at: due_at(definition, &initial, now),
            votes: Vec::new(),
        };
        let history = HistoryEntry {
            version: 1,
            kind: EntryKind::Created,
            transition: String::new(),
            from: String::new(),
            to: initial,
            actor: ctx.principal().clone(),
            at: now,
            input: serde_json::Value::Null,
            request_id: ctx.request_id(),
            idempotency_key: ctx.idempotency_key().cloned(),
        };
        let mut event = self
            .outbox_event(ctx, org, actions::WORKFLOW_CREATED, &instance)
            .await?
            .metadata(json!({
                "definition": instance.definition, "definition_version": instance.definition_version,
                "state": instance.state, "assignee": instance.assignee, "version": instance.version,
            }));
        if let Some(assignee) = instance.assignee {
            event = event.target(AuditTarget::new("user", assignee));
        }
        let record = CreateRecord {
            idempotency: idempotency_record(ctx, fingerprint, &instance),
            instance,
            history,
            event,
        };
        match self.store.create(&record).await? {
            Applied::Committed(instance) => {
                self.instances.put(&instance);
                Ok(Outcome::Committed(instance))
            }
            Applied::Replayed(stored) if stored.fingerprint == fingerprint => Ok(Outcome::Replayed(stored.response)),
            Applied::Replayed(_) => Err(key_reused()),
        }
    }

    /// Reads an instance. Asks `<resource>/<id> read`.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (also for another org's instance); `access.denied`; `storage.*`.
    pub async fn get(&self, ctx: &RequestContext, org: OrgId, id: WorkflowId) -> Result<Instance, PortalError> {
        let op = self.op(ctx, "workflow.read");
        let result = async {
            let roles = self.member_roles(ctx, org).await?;
            let (instance, definition) = self.load(org, id).await?;
            let object = format!("{}/{id}", definition.resource());
            self.gate.decide(ctx, Domain::Org(org), &roles, &object, "read")?;
            Ok(instance)
        }
        .await;
        op.in_org(org).finish(
            &result,
            |i| json!({ "id": i.id, "state": i.state, "version": i.version }),
        );
        result
    }

    /// Reads an instance with the transitions the actor may take on it now: what
    /// [`get`](Self::get) then [`available_for`](Self::available_for) answer, as one
    /// operation recorded as one `workflow.view` event (detail `workflow.view.v1`: `id`,
    /// `state`, `version`, `allowed`, the names of those transitions) instead of a
    /// `workflow.read` and a `workflow.available`. The read's decision is recorded as
    /// `get` records it (`access.check`). Asks `<resource>/<id> read`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); `internal` (an instance of a definition version this
    /// service does not know).
    pub async fn get_with_available(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
    ) -> Result<(Instance, Vec<AvailableTransition>), PortalError> {
        let op = self.op(ctx, "workflow.view");
        let result = async {
            let roles = self.member_roles(ctx, org).await?;
            let (instance, definition) = self.load(org, id).await?;
            let object = format!("{}/{id}", definition.resource());
            self.gate.decide(ctx, Domain::Org(org), &roles, &object, "read")?;
            let available = self.available_on(ctx, &roles, &instance, definition)?;
            Ok((instance, available))
        }
        .await;
        op.in_org(org)
            .finish(&result, |(i, available): &(Instance, Vec<AvailableTransition>)| {
                Detail::deferred(ViewDetail {
                    id: i.id,
                    state: i.state.clone(),
                    version: i.version,
                    allowed: available.iter().map(|t| t.name.clone()).collect(),
                })
            });
        result
    }

    /// A page of an instance's history, oldest first: a long history is read page by
    /// page with the `next` cursor (the last version read). Asks `<resource>/<id> read`.
    ///
    /// # Errors
    ///
    /// `workflow.not_found`; `access.denied`; `validation.invalid_field` (`limit`,
    /// `cursor`); `storage.*`.
    pub async fn history(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
        page: &PageRequest,
    ) -> Result<Page<HistoryEntry>, PortalError> {
        let op = self.op(ctx, "workflow.history");
        let result = async {
            let roles = self.member_roles(ctx, org).await?;
            let (_, definition) = self.load(org, id).await?;
            let object = format!("{}/{id}", definition.resource());
            self.gate.decide(ctx, Domain::Org(org), &roles, &object, "read")?;
            let size = page.size()?;
            let after = page
                .after
                .as_ref()
                .map(|cursor| {
                    cursor.as_str().parse::<u64>().map_err(|_| {
                        PortalError::invalid_field("cursor", "the cursor is not one this listing returned")
                    })
                })
                .transpose()?;
            // Stores keep versions as SQL integers (i64): no entry follows a cursor past
            // i64::MAX, and no store is asked for one.
            if after.is_some_and(|version| i64::try_from(version).is_err()) {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            let entries = self.store.history(org, id, after, size + 1).await?;
            Ok(Page::from_overfetch(entries, size, |e| e.version.to_string()))
        }
        .await;
        op.in_org(org).finish(
            &result,
            |h: &Page<HistoryEntry>| json!({ "id": id, "entries": h.items.len() }),
        );
        result
    }

    /// Lists an org's instances in a stable order (by id), one page at a time. Only
    /// definitions whose `<resource>/* read` the actor holds are listed; asking for one
    /// by name that the actor may not read is `access.denied`.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` if the actor is not a member; `access.denied`;
    /// `validation.invalid_field` (`limit`, `cursor`); `storage.*`.
    pub async fn list(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        filter: &WorkflowFilter,
        page: &PageRequest,
    ) -> Result<Page<Instance>, PortalError> {
        let op = self.op(ctx, "workflow.list");
        let result = async {
            let store_filter = ListFilter {
                definitions: Vec::new(),
                state: filter.state.clone(),
                assignee: filter.assignee,
                due_at_or_before: None,
            };
            self.list_readable(ctx, org, filter.definition.as_deref(), store_filter, page)
                .await
        }
        .await;
        op.in_org(org).finish(&result, |p| json!({ "count": p.items.len() }));
        result
    }

    /// Lists the org's instances past due at `ctx.now()`: those whose current state
    /// bounds its stay and whose due time has come. The host decides when to ask.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    pub async fn overdue(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        page: &PageRequest,
    ) -> Result<Page<Instance>, PortalError> {
        let op = self.op(ctx, "workflow.overdue");
        let result = async {
            let store_filter = ListFilter {
                due_at_or_before: Some(ctx.now()),
                ..ListFilter::default()
            };
            self.list_readable(ctx, org, None, store_filter, page).await
        }
        .await;
        op.in_org(org).finish(&result, |p| json!({ "count": p.items.len() }));
        result
    }

    /// The transitions the actor may fire now (state × permission × guard), so a screen
    /// offers only what will succeed. Required input fields are listed, not checked, and
    /// guards see a `null` input. Transitions that need approvals are not offered: they
    /// happen through [`vote`](Self::vote).
    ///
    /// # Errors
    ///
    /// `workflow.not_found`; `access.denied` (no read permission); `storage.*`.
    pub async fn available_transitions(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
    ) -> Result<Vec<AvailableTransition>, PortalError> {
        let checks = self.explain_transitions(ctx, org, id).await?;
        Ok(checks
            .into_iter()
            .filter(|c| c.refusal.is_none() || c.by_vote)
            .map(|c| AvailableTransition {
                name: c.name,
                to: c.to,
                inputs: c.inputs,
                by_vote: c.by_vote,
            })
            .collect())
    }

    /// Every transition of the instance's definition with the refusal
    /// [`transition`](Self::transition) would return now, or none: the explanation
    /// behind [`available_transitions`](Self::available_transitions). Access denials
    /// carry only their code here; the full decision is in diagnostics.
    ///
    /// # Errors
    ///
    /// `workflow.not_found`; `access.denied` (no read permission); `storage.*`.
    pub async fn explain_transitions(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
    ) -> Result<Vec<TransitionCheck>, PortalError> {
        let op = self.op(ctx, "workflow.explain");
        let result = async {
            let roles = self.member_roles(ctx, org).await?;
            let (instance, definition) = self.load(org, id).await?;
            let object = format!("{}/{id}", definition.resource());
            self.gate.decide(ctx, Domain::Org(org), &roles, &object, "read")?;
            let mut out = Vec::new();
            for transition in definition.transitions() {
                let refusal = self
                    .check_fire(
                        ctx,
                        &roles,
                        &instance,
                        definition,
                        transition,
                        &serde_json::Value::Null,
                        None,
                    )
                    .err()
                    .map(|err| Refusal {
                        code: err.code(),
                        message: err.message().to_owned(),
                        guard: err.details().get("guard").and_then(|g| g.as_str()).map(str::to_owned),
                    });
                let by_vote = self.may_vote(ctx, &roles, &instance, definition, transition)?;
                out.push(TransitionCheck {
                    name: transition.name().to_owned(),
                    to: transition.to().to_owned(),
                    inputs: transition.inputs().to_vec(),
                    refusal,
                    by_vote,
                });
            }
            Ok(out)
        }
        .await;
        op.in_org(org).finish(&result, |c: &Vec<TransitionCheck>| {
            json!({ "id": id, "allowed": c.iter().filter(|c| c.refusal.is_none()).map(|c| &c.name).collect::<Vec<_>>() })
        });
        result
    }

    /// The transitions the actor may fire now on each of `instances`, in their order:
    /// what [`available_transitions`](Self::available_transitions) answers, for instances
    /// the caller has already read (one from [`get`](Self::get) or
    /// [`create`](Self::create), a page of [`list`](Self::list)). Nothing is read again:
    /// the actor's roles in `org` are resolved once (from the request context when the
    /// authenticator already read them) and every decision is made on the instances as
    /// given, so a page of fifty costs no more store calls than one instance. The
    /// transition itself checks everything again against the stored instance.
    ///
    /// Asks `<resource>/<id> read` for each instance; a denial is recorded and refuses
    /// the whole call, as [`get`](Self::get) would.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (an org the actor cannot reach, or an instance of another
    /// org than `org`); `access.denied`; `internal` (an instance of a definition version
    /// this service does not know); `storage.*`.
    pub async fn available_for(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        instances: &[Instance],
    ) -> Result<Vec<Vec<AvailableTransition>>, PortalError> {
        let op = self.op(ctx, "workflow.available");
        let result = async {
            let roles = self.member_roles(ctx, org).await?;
            let mut out = Vec::with_capacity(instances.len());
            for instance in instances {
                if instance.org != org {
                    return Err(not_found());
                }
                let definition = self.definition_of(instance)?;
                let object = format!("{}/{}", definition.resource(), instance.id);
                if !self.gate.allows(ctx, Domain::Org(org), &roles, &object, "read")? {
                    // Evaluated again to record the explained denial.
                    self.gate.decide(ctx, Domain::Org(org), &roles, &object, "read")?;
                }
                out.push(self.available_on(ctx, &roles, instance, definition)?);
            }
            Ok(out)
        }
        .await;
        op.in_org(org).finish(&result, |all: &Vec<Vec<AvailableTransition>>| {
            json!({
                "instances": instances.iter().zip(all).map(|(i, a)| json!({
                    "id": i.id,
                    "version": i.version,
                    "allowed": a.iter().map(|t| &t.name).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        });
        result
    }

    /// Fires the transition `name` on instance `id`, if the instance is still at
    /// `expected_version`. All checks run first; then one atomic store call writes the
    /// new state, the history entry, the customer audit event and (with an idempotency key in
    /// `ctx`) the idempotency record.
    ///
    /// Idempotency works as Stripe's does. With a key, the same request again (same
    /// instance, transition, expected version and input) after the first committed
    /// returns the stored result and changes nothing; another request under the same key
    /// is refused (`idempotency.key_reused`); a duplicate that arrives at this service
    /// while the first is still being worked on is refused with the retryable
    /// `idempotency.in_flight`. The key is claimed by the atomic store call itself, so
    /// duplicates racing on two replicas have one effect: the one that reaches the store
    /// second waits for the first's commit and receives its stored result. Only committed
    /// results are stored, so a refused request (or one that failed with
    /// `storage.unavailable`) holds nothing and its retry is evaluated afresh.
    ///
    /// # Errors
    ///
    /// `workflow.not_found`; `workflow.version_conflict` (with `current_version`);
    /// `workflow.unknown_transition`; `workflow.transition_not_allowed` (wrong state);
    /// `workflow.approval_required`; `access.denied`; `validation.invalid_field`
    /// (`input` not an object); `workflow.input_missing` (`param` names the field);
    /// `workflow.guard_failed` (`guard` detail); `idempotency.in_flight`;
    /// `idempotency.key_reused`; `storage.*`.
    pub async fn transition(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
        name: &str,
        expected_version: u64,
        input: serde_json::Value,
    ) -> Result<Instance, PortalError> {
        self.transition_with(ctx, org, id, name, expected_version, input, Edits::none())
            .await
    }

    /// [`transition`](Self::transition), also changing the payload and the assignee as
    /// `edits` says, in the same atomic store call. The checks of `transition` come
    /// first; then the edited payload must be a payload of the definition's type and a
    /// new assignee a member of the org. The history entry records the edits.
    ///
    /// # Errors
    ///
    /// As [`transition`](Self::transition); `validation.invalid_field` with param
    /// `payload` or `assignee` for an edit refused.
    #[allow(clippy::too_many_arguments, reason = "the arguments of transition, plus the edits")]
    pub async fn transition_with(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
        name: &str,
        expected_version: u64,
        input: serde_json::Value,
        edits: Edits,
    ) -> Result<Instance, PortalError> {
        let op = self.op(ctx, "workflow.transition");
        let mut request = json!({
            "op": "transition", "org": org, "instance": id, "transition": name,
            "expected_version": expected_version, "input": input,
        });
        if !edits.is_empty()
            && let serde_json::Value::Object(fields) = &mut request
        {
            fields.insert(
                "edits".to_owned(),
                json!({ "payload": edits.payload, "assignee": edits.assignee }),
            );
        }
        let fingerprint = fingerprint(&request);
        let result = self
            .with_key(ctx, org, fingerprint, async {
                let step = Step::Transition {
                    name,
                    expected_version,
                    input: &input,
                    edits: &edits,
                };
                self.step(ctx, org, id, &step, fingerprint).await
            })
            .await
            .map_err(|err| name_key(err, ctx));
        op.in_org(org).finish(
            &result,
            |i| json!({ "id": id, "transition": name, "state": i.state, "version": i.version }),
        );
        result
    }

    /// Casts a vote on a transition that needs approvals. The vote that brings the
    /// approvals to the rule's count fires the transition; a reject vote fires the rule's
    /// rejection transition. Either way the vote is a history entry, written atomically
    /// with the version check. The instance's creator cannot vote, each voter votes once
    /// per stay in a state, and a member may cast the vote another member delegated to
    /// them while the delegation is in force. Idempotency keys work as for
    /// [`transition`](Self::transition).
    ///
    /// # Errors
    ///
    /// `workflow.not_found`; `workflow.version_conflict`; `workflow.unknown_transition`;
    /// `approval.not_required`; `workflow.transition_not_allowed`; `access.denied` (the
    /// voter lacks the rule's permission, or no delegation exists);
    /// `approval.delegation_expired`; `approval.self_approval`; `approval.already_voted`;
    /// `workflow.input_missing`; `workflow.guard_failed`; `idempotency.in_flight`;
    /// `idempotency.key_reused`; `storage.*`.
    pub async fn vote(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
        vote: VoteRequest,
    ) -> Result<Instance, PortalError> {
        let op = self.op(ctx, "workflow.vote");
        let request = json!({
            "op": "vote", "org": org, "instance": id, "transition": vote.transition,
            "decision": vote.decision, "expected_version": vote.expected_version,
            "input": vote.input, "on_behalf_of": vote.on_behalf_of,
        });
        let name = vote.transition.clone();
        let fingerprint = fingerprint(&request);
        let result = self
            .with_key(
                ctx,
                org,
                fingerprint,
                self.step(ctx, org, id, &Step::Vote(&vote), fingerprint),
            )
            .await
            .map_err(|err| name_key(err, ctx));
        op.in_org(org).finish(&result, |i| {
            json!({ "id": id, "transition": name, "decision": vote.decision, "state": i.state, "version": i.version })
        });
        result
    }

    /// Assigns instance `id` to the member `assignee` (or unassigns it with `None`), if the
    /// instance is still at `expected_version`. Asks `<resource>/<id> write`, as a
    /// transition without a declared permission does. The state stays, the version goes
    /// up by one, and the history gets an [`EntryKind::Assigned`] entry, all in one
    /// atomic store call. An instance in a terminal state cannot be reassigned.
    /// Idempotency keys work as for [`transition`](Self::transition).
    ///
    /// # Errors
    ///
    /// `workflow.not_found`; `workflow.version_conflict`; `workflow.transition_not_allowed`
    /// (terminal state); `access.denied`; `validation.invalid_field` (`assignee` not a
    /// member); `idempotency.in_flight`; `idempotency.key_reused`; `storage.*`.
    pub async fn assign(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
        expected_version: u64,
        assignee: Option<UserId>,
    ) -> Result<Instance, PortalError> {
        let op = self.op(ctx, "workflow.assign");
        let request = json!({
            "op": "assign", "org": org, "instance": id, "expected_version": expected_version,
            "assignee": assignee,
        });
        let fingerprint = fingerprint(&request);
        let result = self
            .with_key(ctx, org, fingerprint, async {
                let step = Step::Assign {
                    expected_version,
                    assignee,
                };
                self.step(ctx, org, id, &step, fingerprint).await
            })
            .await;
        op.in_org(org).finish(
            &result,
            |i| json!({ "id": id, "assignee": i.assignee, "version": i.version }),
        );
        result
    }

    /// Delegates the actor's votes in `org` to the member `to` from `starts_at` until
    /// `ends_at`, replacing an earlier delegation to the same member. Any member may
    /// delegate their own vote; the delegate casts it with
    /// [`VoteRequest::on_behalf_of`].
    ///
    /// # Errors
    ///
    /// `workflow.not_found` if the actor cannot reach the org; `access.denied` if the
    /// actor is not a user, or reaches the org only through a support grant;
    /// `validation.invalid_field` (`to` not another member, `ends_at` not
    /// after `starts_at`); `storage.*`.
    pub async fn delegate(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        to: UserId,
        starts_at: OffsetDateTime,
        ends_at: OffsetDateTime,
    ) -> Result<Delegation, PortalError> {
        let op = self.op(ctx, "workflow.delegate");
        let result = async {
            self.member_roles(ctx, org).await?;
            let Principal::User(me) = ctx.principal() else {
                return Err(denied());
            };
            // A support grant reaches the org but gives no vote of its own to hand on, and
            // staff never write through a read-only grant: only a member delegates.
            if self.tenancy.get_membership(org, *me).await?.is_none() {
                return Err(denied());
            }
            if to == *me || self.tenancy.get_membership(org, to).await?.is_none() {
                return Err(PortalError::invalid_field("to", "the delegate must be another member"));
            }
            if ends_at <= starts_at {
                return Err(PortalError::invalid_field(
                    "ends_at",
                    "a delegation must end after it starts",
                ));
            }
            let delegation = Delegation {
                org,
                from: *me,
                to,
                starts_at,
                ends_at,
                created_at: ctx.now(),
            };
            self.store.put_delegation(&delegation).await?;
            Ok(delegation)
        }
        .await;
        op.in_org(org).finish(&result, |d| {
            json!({ "from": d.from, "to": d.to, "starts_at": d.starts_at.unix_timestamp(), "ends_at": d.ends_at.unix_timestamp() })
        });
        result
    }

    /// Runs a transition, a vote or an assignment: the actor's roles, then
    /// [`fire`](Self::fire).
    async fn step(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
        step: &Step<'_>,
        fingerprint: [u8; 32],
    ) -> Worked {
        let mut decisions = Vec::new();
        let outcome = match self.member_roles(ctx, org).await {
            Ok(roles) => self.fire(ctx, org, id, &roles, step, fingerprint, &mut decisions).await,
            Err(err) => Err(err),
        };
        (outcome, decisions)
    }

    /// Checks a step against the instance at the version the request names, then makes
    /// the one [`WorkflowStore::apply`], which claims the idempotency key. The access
    /// decisions that count go to `decisions`.
    ///
    /// The instance comes from the cache when it holds the version the request names.
    /// Only a step that reaches `apply` is answered from the cache: a refusal found on
    /// the cached copy, or a version conflict from `apply` (another replica moved the
    /// instance on), is not trusted, and the step runs again on what the store holds;
    /// the decisions made against the copy are then dropped.
    #[allow(clippy::too_many_arguments, reason = "a private step of transition, vote and assign")]
    async fn fire(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WorkflowId,
        roles: &[RoleName],
        step: &Step<'_>,
        fingerprint: [u8; 32],
        decisions: &mut Vec<Verdict>,
    ) -> Result<Outcome, PortalError> {
        let expected_version = step.expected_version();
        if let Some(cached) = self.instances.get(org, id, expected_version) {
            let mut tentative = Vec::new();
            if let Ok((next, history)) = self.prepare(ctx, roles, step, &cached, &mut tentative).await {
                match self
                    .apply(ctx, step, expected_version, next, history, fingerprint)
                    .await
                {
                    Err(err) if matches!(err.code(), ErrorCode::VersionConflict | ErrorCode::WorkflowNotFound) => {
                        // Nothing was written: the cached version is no longer current.
                        self.instances.forget(org, id, expected_version);
                    }
                    outcome => {
                        decisions.append(&mut tentative);
                        return outcome;
                    }
                }
            }
        }
        let (instance, _) = self.load(org, id).await?;
        let (next, history) = self.prepare(ctx, roles, step, &instance, decisions).await?;
        self.apply(ctx, step, expected_version, next, history, fingerprint)
            .await
    }

    /// Checks a step against `instance` and builds what it writes: the next instance and
    /// its history entry. The access decisions it makes go to `decisions`, for
    /// [`fire`](Self::fire) to record once it knows the step was evaluated afresh.
    async fn prepare(
        &self,
        ctx: &RequestContext,
        roles: &[RoleName],
        step: &Step<'_>,
        instance: &Instance,
        decisions: &mut Vec<Verdict>,
    ) -> Result<(Instance, HistoryEntry), PortalError> {
        let definition = self.definition_of(instance)?;
        match step {
            Step::Transition {
                name,
                expected_version,
                input,
                edits,
            } => {
                let transition = definition.transition(name).ok_or_else(|| unknown_transition(name))?;
                if instance.version != *expected_version {
                    return Err(version_conflict(instance.version));
                }
                self.check_fire(ctx, roles, instance, definition, transition, input, Some(decisions))?;
                let mut next = enter(instance, definition, transition.to(), ctx.now());
                if let Some(edit) = &edits.payload {
                    let payload = edit.applied_to(&instance.payload);
                    definition
                        .check_payload(&payload)
                        .map_err(|err| PortalError::invalid_field("payload", err))?;
                    next.payload = payload;
                }
                if let Some(change) = edits.assignee {
                    let assignee = change.assignee();
                    self.check_assignee(instance.org, assignee).await?;
                    next.assignee = assignee;
                }
                let history = HistoryEntry {
                    version: next.version,
                    kind: EntryKind::Transition {
                        payload: edits.payload.clone(),
                        assignee: edits.assignee,
                    },
                    transition: (*name).to_owned(),
                    from: instance.state.clone(),
                    to: next.state.clone(),
                    actor: ctx.principal().clone(),
                    at: ctx.now(),
                    input: (*input).clone(),
                    request_id: ctx.request_id(),
                    idempotency_key: ctx.idempotency_key().cloned(),
                };
                Ok((next, history))
            }
            Step::Vote(vote) => {
                self.prepare_vote(ctx, roles, vote, instance, definition, decisions)
                    .await
            }
            Step::Assign {
                expected_version,
                assignee,
            } => {
                if instance.version != *expected_version {
                    return Err(version_conflict(instance.version));
                }
                if definition.state(&instance.state).is_some_and(|s| s.is_terminal()) {
                    return Err(PortalError::new(
                        ErrorCode::TransitionNotAllowed,
                        format!(
                            "an instance in the terminal state `{}` cannot be reassigned",
                            instance.state
                        ),
                    )
                    .with_detail("state", instance.state.clone()));
                }
                let object = format!("{}/{}", definition.resource(), instance.id);
                let verdict =
                    self.gate
                        .evaluate_as(ctx, ctx.principal(), Domain::Org(instance.org), roles, &object, "write")?;
                let allowed = verdict.allowed();
                decisions.push(verdict);
                if !allowed {
                    return Err(denied());
                }
                self.check_assignee(instance.org, *assignee).await?;
                let next = Instance {
                    version: instance.version + 1,
                    updated_at: ctx.now(),
                    assignee: *assignee,
                    ..instance.clone()
                };
                let history = HistoryEntry {
                    version: next.version,
                    kind: EntryKind::Assigned {
                        previous: instance.assignee,
                        assignee: *assignee,
                    },
                    transition: String::new(),
                    from: instance.state.clone(),
                    to: instance.state.clone(),
                    actor: ctx.principal().clone(),
                    at: ctx.now(),
                    input: serde_json::Value::Null,
                    request_id: ctx.request_id(),
                    idempotency_key: ctx.idempotency_key().cloned(),
                };
                Ok((next, history))
            }
        }
    }

    /// Whether the actor may cast their own vote on `transition` now, asked silently:
    /// the checks of [`prepare_vote`](Self::prepare_vote) that do not depend on the
    /// vote's input (its guards and required input are checked when it is cast).
    fn may_vote(
        &self,
        ctx: &RequestContext,
        roles: &[RoleName],
        instance: &Instance,
        definition: &WorkflowDefinition,
        transition: &Transition,
    ) -> Result<bool, PortalError> {
        let Some(rule) = transition.approval() else {
            return Ok(false);
        };
        let me = ctx.principal();
        if check_state(instance, definition, transition).is_err()
            || check_voter(instance, transition.name(), me, me).is_err()
        {
            return Ok(false);
        }
        let object = rule.permission.object_for(instance.id);
        self.gate
            .allows(ctx, Domain::Org(instance.org), roles, &object, &rule.permission.action)
    }

    /// Refuses an assignee who is not a member of `org` (`validation.invalid_field`).
    async fn check_assignee(&self, org: OrgId, assignee: Option<UserId>) -> Result<(), PortalError> {
        if let Some(user) = assignee
            && self.tenancy.get_membership(org, user).await?.is_none()
        {
            return Err(PortalError::invalid_field("assignee", "the assignee is not a member"));
        }
        Ok(())
    }

    /// The checks of [`vote`](Self::vote), in order, and what the vote writes.
    async fn prepare_vote(
        &self,
        ctx: &RequestContext,
        actor_roles: &[RoleName],
        vote: &VoteRequest,
        instance: &Instance,
        definition: &WorkflowDefinition,
        decisions: &mut Vec<Verdict>,
    ) -> Result<(Instance, HistoryEntry), PortalError> {
        let org = instance.org;
        let id = instance.id;
        let transition = definition
            .transition(&vote.transition)
            .ok_or_else(|| unknown_transition(&vote.transition))?;
        if instance.version != vote.expected_version {
            return Err(version_conflict(instance.version));
        }
        let Some(rule) = transition.approval() else {
            return Err(PortalError::new(
                ErrorCode::ApprovalNotRequired,
                format!("transition `{}` needs no approvals", vote.transition),
            ));
        };
        check_state(instance, definition, transition)?;
        let (voter, voter_roles) = self.voter(ctx, org, actor_roles, vote.on_behalf_of).await?;
        check_voter(instance, &vote.transition, &voter, ctx.principal())?;
        let object = rule.permission.object_for(id);
        let verdict = self.gate.evaluate_as(
            ctx,
            &voter,
            Domain::Org(org),
            &voter_roles,
            &object,
            &rule.permission.action,
        )?;
        let allowed = verdict.allowed();
        decisions.push(verdict);
        if !allowed {
            return Err(denied());
        }
        if vote.decision == VoteDecision::Approve {
            check_input(transition, &vote.input)?;
            check_guards(ctx, &voter_roles, instance, transition, &vote.input)?;
        }
        let cast = Vote {
            transition: vote.transition.clone(),
            voter: voter.clone(),
            cast_by: ctx.principal().clone(),
            decision: vote.decision,
            at: ctx.now(),
        };
        let approvals = instance
            .votes
            .iter()
            .filter(|v| v.transition == vote.transition && v.decision == VoteDecision::Approve)
            .count()
            + 1;
        let fired = match vote.decision {
            VoteDecision::Approve if approvals >= rule.required as usize => Some(transition),
            VoteDecision::Approve => None,
            VoteDecision::Reject => definition.transition(&rule.on_reject),
        };
        let (next, fired_name) = match fired {
            Some(fired) => (enter(instance, definition, fired.to(), ctx.now()), fired.name()),
            None => {
                let mut next = instance.clone();
                next.version += 1;
                next.updated_at = ctx.now();
                next.votes.push(cast);
                (next, transition.name())
            }
        };
        let history = HistoryEntry {
            version: next.version,
            kind: EntryKind::Vote {
                decision: vote.decision,
                on_behalf_of: vote.on_behalf_of,
            },
            transition: fired_name.to_owned(),
            from: instance.state.clone(),
            to: next.state.clone(),
            actor: ctx.principal().clone(),
            at: ctx.now(),
            input: vote.input.clone(),
            request_id: ctx.request_id(),
            idempotency_key: ctx.idempotency_key().cloned(),
        };
        Ok((next, history))
    }

    /// The voter of record and their roles: the actor, or the member who delegated.
    async fn voter(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        actor_roles: &[RoleName],
        on_behalf_of: Option<UserId>,
    ) -> Result<(Principal, Vec<RoleName>), PortalError> {
        let Some(from) = on_behalf_of else {
            return Ok((ctx.principal().clone(), actor_roles.to_vec()));
        };
        let Principal::User(me) = ctx.principal() else {
            return Err(denied());
        };
        let delegation = self.store.find_delegation(org, from, *me).await?.ok_or_else(denied)?;
        if !delegation.is_active_at(ctx.now()) {
            return Err(PortalError::new(
                ErrorCode::DelegationExpired,
                "the delegation is not in force now",
            ));
        }
        let membership = self.tenancy.get_membership(org, from).await?.ok_or_else(denied)?;
        Ok((Principal::User(from), membership.roles.to_vec()))
    }

    /// The one store call of a transition or vote.
    async fn apply(
        &self,
        ctx: &RequestContext,
        step: &Step<'_>,
        expected_version: u64,
        next: Instance,
        history: HistoryEntry,
        fingerprint: [u8; 32],
    ) -> Result<Outcome, PortalError> {
        let idempotency = idempotency_record(ctx, fingerprint, &next);
        let event = self.step_event(ctx, step, &next, &history).await?;
        let change = TransitionRecord {
            expected_version,
            event,
            next,
            history,
            idempotency,
        };
        match self.store.apply(&change).await? {
            Applied::Committed(instance) => {
                self.instances.put(&instance);
                Ok(Outcome::Committed(instance))
            }
            Applied::Replayed(record) if record.fingerprint == fingerprint => Ok(Outcome::Replayed(record.response)),
            Applied::Replayed(_) => Err(key_reused()),
        }
    }

    /// The customer audit event `entry` about `instance` for this request: its actor as
    /// they are now (a user's display name; other principals by id alone), the instance
    /// as its first target, no metadata yet.
    async fn outbox_event(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        entry: CatalogEntry,
        instance: &Instance,
    ) -> Result<AuditEvent, PortalError> {
        let name = match ctx.principal() {
            Principal::User(user) => self.tenancy.get_user(*user).await?.map(|u| u.display_name.to_string()),
            Principal::ApiKey { .. } | Principal::Service(_) => None,
        };
        let actor = AuditActor::new(ctx.principal(), name);
        Ok(AuditEvent::new(ctx, &*self.ids, org, entry, actor).target(AuditTarget::new("workflow", instance.id)))
    }

    /// The customer audit event of a transition, a vote or an assignment: the facts a
    /// customer sees (definition, states, transition, decision, assignee), never the
    /// payload or the input (see `docs/audit-and-webhooks.md`).
    async fn step_event(
        &self,
        ctx: &RequestContext,
        step: &Step<'_>,
        next: &Instance,
        history: &HistoryEntry,
    ) -> Result<AuditEvent, PortalError> {
        let org = next.org;
        Ok(match step {
            Step::Transition { edits, .. } => {
                let mut metadata = json!({
                    "definition": next.definition, "transition": history.transition,
                    "from": history.from, "to": history.to, "version": next.version,
                });
                if edits.assignee.is_some()
                    && let serde_json::Value::Object(fields) = &mut metadata
                {
                    fields.insert("assignee".to_owned(), json!(next.assignee));
                }
                self.outbox_event(ctx, org, actions::WORKFLOW_TRANSITIONED, next)
                    .await?
                    .metadata(metadata)
            }
            Step::Vote(vote) => {
                // A vote that fires its transition (or the rejection's) enters a state,
                // which clears the votes; one that does not adds itself to them.
                let fired = next.votes.is_empty().then_some(history.transition.as_str());
                let mut event = self
                    .outbox_event(ctx, org, actions::WORKFLOW_VOTED, next)
                    .await?
                    .metadata(json!({
                        "definition": next.definition, "transition": vote.transition,
                        "decision": vote.decision, "on_behalf_of": vote.on_behalf_of, "fired": fired,
                        "from": history.from, "to": history.to, "version": next.version,
                    }));
                if let Some(member) = vote.on_behalf_of {
                    event = event.target(AuditTarget::new("user", member));
                }
                event
            }
            Step::Assign { assignee, .. } => {
                let previous = match &history.kind {
                    EntryKind::Assigned { previous, .. } => *previous,
                    _ => None,
                };
                let mut event = self
                    .outbox_event(ctx, org, actions::WORKFLOW_ASSIGNED, next)
                    .await?
                    .metadata(json!({
                        "definition": next.definition, "state": next.state,
                        "previous": previous, "assignee": assignee, "version": next.version,
                    }));
                if let Some(user) = assignee {
                    event = event.target(AuditTarget::new("user", user));
                }
                event
            }
        })
    }

    async fn list_readable(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        definition: Option<&str>,
        mut filter: ListFilter,
        page: &PageRequest,
    ) -> Result<Page<Instance>, PortalError> {
        let roles = self.member_roles(ctx, org).await?;
        let size = page.size()?;
        let after = page
            .after
            .as_ref()
            .map(|c| {
                c.as_str()
                    .parse::<WorkflowId>()
                    .map_err(|_| PortalError::invalid_field("cursor", "the cursor is not one this listing returned"))
            })
            .transpose()?;
        let mut names: Vec<(&str, &str)> = Vec::new();
        for def in self.definitions.values() {
            if !names.iter().any(|(n, _)| *n == def.name()) {
                names.push((def.name(), def.resource()));
            }
        }
        if let Some(wanted) = definition {
            let Some(&(name, resource)) = names.iter().find(|(n, _)| *n == wanted) else {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            };
            self.gate
                .decide(ctx, Domain::Org(org), &roles, &format!("{resource}/*"), "read")?;
            filter.definitions = vec![name.to_owned()];
        } else {
            for (name, resource) in names {
                let object = format!("{resource}/*");
                if self.gate.allows(ctx, Domain::Org(org), &roles, &object, "read")? {
                    filter.definitions.push(name.to_owned());
                }
            }
            if filter.definitions.is_empty() {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
        }
        let items = self.store.list(org, &filter, after, size + 1).await?;
        Ok(Page::from_overfetch(items, size, |i| i.id.to_string()))
    }

    /// Every check of [`transition`](Self::transition) after the version: state, the
    /// approval gate, permission, input and guards. With `decisions`, the permission
    /// check's decision is pushed there and the input is checked; without, the
    /// permission is asked silently and the input is not checked (for
    /// [`explain_transitions`](Self::explain_transitions)).
    #[allow(
        clippy::too_many_arguments,
        reason = "a private check shared by transition and explain_transitions"
    )]
    fn check_fire(
        &self,
        ctx: &RequestContext,
        roles: &[RoleName],
        instance: &Instance,
        definition: &WorkflowDefinition,
        transition: &Transition,
        input: &serde_json::Value,
        decisions: Option<&mut Vec<Verdict>>,
    ) -> Result<(), PortalError> {
        check_state(instance, definition, transition)?;
        if transition.approval().is_some() {
            return Err(PortalError::new(
                ErrorCode::ApprovalRequired,
                format!("transition `{}` happens through approval votes", transition.name()),
            ));
        }
        let default = RequiredPermission {
            object: format!("{}/*", definition.resource()),
            action: "write".to_owned(),
        };
        let permission = transition.permission().unwrap_or(&default);
        let object = permission.object_for(instance.id);
        if let Some(decisions) = decisions {
            let verdict = self.gate.evaluate_as(
                ctx,
                ctx.principal(),
                Domain::Org(instance.org),
                roles,
                &object,
                &permission.action,
            )?;
            let allowed = verdict.allowed();
            decisions.push(verdict);
            if !allowed {
                return Err(denied());
            }
            check_input(transition, input)?;
        } else if !self
            .gate
            .allows(ctx, Domain::Org(instance.org), roles, &object, &permission.action)?
        {
            return Err(denied());
        }
        check_guards(ctx, roles, instance, transition, input)
    }

    /// The actor's roles in `org` (a membership, or an active support grant); an actor
    /// who cannot reach the org gets `workflow.not_found`.
    async fn member_roles(&self, ctx: &RequestContext, org: OrgId) -> Result<Vec<RoleName>, PortalError> {
        self.gate.roles_or(ctx, org, not_found).await
    }

    /// The instance, read from the store (and cached), and the definition version it
    /// runs under.
    async fn load(&self, org: OrgId, id: WorkflowId) -> Result<(Instance, &WorkflowDefinition), PortalError> {
        let instance = self.store.get(org, id).await?.ok_or_else(not_found)?;
        self.instances.put(&instance);
        let definition = self.definition_of(&instance)?;
        Ok((instance, definition))
    }

    /// The definition version `instance` runs under.
    fn definition_of(&self, instance: &Instance) -> Result<&WorkflowDefinition, PortalError> {
        let key = (instance.definition.clone(), instance.definition_version);
        self.definitions.get(&key).ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                format!("workflow definition `{}` version {} is not registered", key.0, key.1),
            )
        })
    }

    /// The transitions an actor holding `roles` may take now on `instance` (whose read
    /// the caller has decided), without recording anything: fire it, or vote on it.
    fn available_on(
        &self,
        ctx: &RequestContext,
        roles: &[RoleName],
        instance: &Instance,
        definition: &WorkflowDefinition,
    ) -> Result<Vec<AvailableTransition>, PortalError> {
        let mut available = Vec::new();
        for transition in definition.transitions() {
            // A transition that cannot leave the state is neither fired nor voted on (both
            // begin with `check_state`): skipped before building the refusal that nobody
            // reads.
            if !transition.leaves(&instance.state) {
                continue;
            }
            let fire = self
                .check_fire(
                    ctx,
                    roles,
                    instance,
                    definition,
                    transition,
                    &serde_json::Value::Null,
                    None,
                )
                .is_ok();
            let by_vote = !fire && self.may_vote(ctx, roles, instance, definition, transition)?;
            if fire || by_vote {
                available.push(AvailableTransition {
                    name: transition.name().to_owned(),
                    to: transition.to().to_owned(),
                    inputs: transition.inputs().to_vec(),
                    by_vote,
                });
            }
        }
        Ok(available)
    }

    /// Starts recording the operation `name`: a change for the steps that write, a query
    /// for the reads.
    fn op<'a>(&'a self, ctx: &'a RequestContext, name: &'static str) -> Operation<'a> {
        let kind = match name {
            "workflow.transition" | "workflow.vote" | "workflow.create" | "workflow.delegate" | "workflow.assign" => {
                EventKind::WorkflowTransition
            }
            _ => EventKind::Query,
        };
        self.gate.begin(ctx, kind, name)
    }
}

/// The detail of a `workflow.view` event (`workflow.view.v1`), kept typed until read: the
/// instance's id, state and version, and the names of the transitions the actor may take.
#[derive(serde::Serialize)]
struct ViewDetail {
    id: WorkflowId,
    state: String,
    version: u64,
    allowed: Vec<String>,
}
