//! `Portal`: the facade a host service holds, built once from adapters.

use std::sync::Arc;

use crate::access::{Authorizer, PolicyReplica, RoleTableAuthorizer};
use crate::audit::AuditLog;
use crate::audit_trail::AuditTrailService;
use crate::context::{Principal, RequestContextBuilder};
use crate::diagnostics::{DiagnosticSink, Journal};
use crate::error::{ConfigError, ErrorCode, PortalError};
use crate::gate::Gate;
use crate::identity::{Authenticated, Authenticator, Credential};
use crate::ids::{IdGenerator, RandomIds};
use crate::policy::{AuditedPolicyStore, PolicyService};
use crate::support::{SupportConfig, SupportGrantStore, SupportService};
use crate::tenancy::{TenancyConfig, TenancyService, TenancyStore};
use crate::time::{Clock, SystemClock};
use crate::triage::{SessionDirectory, TriageConfig, TriageService};
use crate::webhooks::{WebhookConfig, WebhookService, WebhookStore};
use crate::workflow::{WorkflowDefinition, WorkflowService, WorkflowStore};

/// The portal: every service, wired to the adapters the host chose.
///
/// Cheap to clone (it holds `Arc`s); build it once at start-up and share it.
#[derive(Clone)]
pub struct Portal {
    gate: Gate,
    tenancy: TenancyService,
    workflows: Option<WorkflowService>,
    policy: Option<PolicyService>,
    support: Option<SupportService>,
    authenticator: Option<Arc<dyn Authenticator>>,
    triage: Option<TriageService>,
    audit_trail: Option<AuditTrailService>,
    webhooks: Option<WebhookService>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal").finish_non_exhaustive()
    }
}

impl Portal {
    /// Starts building a portal.
    pub fn builder() -> PortalBuilder {
        PortalBuilder::default()
    }

    /// Organizations, users, memberships and invitations.
    pub fn tenancy(&self) -> &TenancyService {
        &self.tenancy
    }

    /// The gate every service decides access through (see [`crate::gate`]); the host's
    /// own operations may decide through it too, so that their decisions are recorded and
    /// explained as the portal's are.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Workflow instances, transitions and approvals.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotConfigured`] if the portal was built without a
    /// [`workflow_store`](PortalBuilder::workflow_store); it converts into a
    /// [`PortalError`] with `?`.
    pub fn workflows(&self) -> Result<&WorkflowService, ConfigError> {
        self.workflows
            .as_ref()
            .ok_or(ConfigError::NotConfigured("a workflow store"))
    }

    /// Custom roles, role assignment and permission introspection.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotConfigured`] if the portal was built without a
    /// [`policy`](PortalBuilder::policy) store and replica.
    pub fn policy(&self) -> Result<&PolicyService, ConfigError> {
        self.policy.as_ref().ok_or(ConfigError::NotConfigured("a policy store"))
    }

    /// Support access grants (vendor staff let into a customer org for a reason and a
    /// bounded time).
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotConfigured`] if the portal was built without a
    /// [`support_grants`](PortalBuilder::support_grants) store.
    pub fn support(&self) -> Result<&SupportService, ConfigError> {
        self.support
            .as_ref()
            .ok_or(ConfigError::NotConfigured("a support grant store"))
    }

    /// Checks a credential with the portal's [`authenticator`](PortalBuilder::authenticator)
    /// (such as `portal_auth::identity::IdentityService`). `ctx` is the request's context
    /// before authentication, usually for the host's own service principal; turn the
    /// result into the request's context with [`context_for`](Self::context_for).
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` for any refused credential, whatever the reason (the
    /// reason is in the diagnostics); `storage.*`; `internal.error` if the portal was
    /// built without an authenticator.
    pub async fn authenticate(
        &self,
        ctx: &crate::RequestContext,
        credential: &Credential,
    ) -> Result<Authenticated, PortalError> {
        let authenticator = self
            .authenticator
            .as_ref()
            .ok_or_else(|| PortalError::new(ErrorCode::Internal, "the portal was built without an authenticator"))?;
        Ok(authenticator.authenticate(ctx, credential).await?)
    }

    /// Starts the [`RequestContext`](crate::RequestContext) of an authenticated request:
    /// its principal, its org (a session's active org, an API key's own org), the roles
    /// and MFA standing the authenticator read for that org (so the services need not read
    /// the membership or the policy again) and, for an API key, its scopes, which alone
    /// decide what the key may do.
    pub fn context_for(&self, authenticated: &Authenticated) -> PortalBuilderContext<'_> {
        let mut inner = crate::context::RequestContext::builder(authenticated.principal.clone())
            .scopes(authenticated.scopes.clone());
        if let Some(org) = authenticated.org {
            inner = inner.org(org);
            if let Some(roles) = &authenticated.org_roles {
                inner = inner.org_roles(org, roles.clone());
            }
            if let Some(unmet) = authenticated.org_mfa_unmet {
                inner = inner.org_mfa_unmet(org, unmet);
            }
        }
        PortalBuilderContext { portal: self, inner }
    }

    /// Support triage over the diagnostics journal (one request, timelines, `explain`,
    /// support bundles, retention and export).
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotConfigured`] if the portal was built without a
    /// [`journal`](PortalBuilder::journal).
    pub fn triage(&self) -> Result<&TriageService, ConfigError> {
        self.triage.as_ref().ok_or(ConfigError::NotConfigured("a journal"))
    }

    /// An org's customers reading their own audit log (`audit read`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotConfigured`] if the portal was built without an
    /// [`audit_log`](PortalBuilder::audit_log).
    pub fn audit_trail(&self) -> Result<&AuditTrailService, ConfigError> {
        self.audit_trail
            .as_ref()
            .ok_or(ConfigError::NotConfigured("an audit log"))
    }

    /// An org's webhook endpoints, their attempt log and replays (`webhooks manage`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotConfigured`] if the portal was built without a
    /// [`webhook_store`](PortalBuilder::webhook_store).
    pub fn webhooks(&self) -> Result<&WebhookService, ConfigError> {
        self.webhooks
            .as_ref()
            .ok_or(ConfigError::NotConfigured("a webhook store"))
    }

    /// Starts a [`RequestContext`](crate::RequestContext) for `principal`; finish it with
    /// [`PortalBuilderContext::build`] to stamp it with this portal's clock and ids.
    pub fn context(&self, principal: Principal) -> PortalBuilderContext<'_> {
        PortalBuilderContext {
            portal: self,
            inner: crate::context::RequestContext::builder(principal),
        }
    }

    /// The portal's clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The portal's id generator.
    pub fn ids(&self) -> &dyn IdGenerator {
        &*self.ids
    }
}

/// A [`RequestContextBuilder`] bound to a portal, so `build` needs no arguments.
#[derive(Debug)]
#[must_use]
pub struct PortalBuilderContext<'p> {
    portal: &'p Portal,
    inner: RequestContextBuilder,
}

impl PortalBuilderContext<'_> {
    /// Changes the underlying builder (request id, trace, org, idempotency key).
    pub fn with(mut self, f: impl FnOnce(RequestContextBuilder) -> RequestContextBuilder) -> Self {
        self.inner = f(self.inner);
        self
    }

    /// Sets the org the caller works in.
    pub fn org(self, org: crate::ids::OrgId) -> Self {
        self.with(|b| b.org(org))
    }

    /// Builds the context with the portal's clock and id generator.
    pub fn build(self) -> crate::context::RequestContext {
        self.inner.build(&*self.portal.clock, &*self.portal.ids)
    }
}

/// Builds a [`Portal`]. Only the tenancy store is required; the rest have defaults:
///
/// | part | default |
/// |---|---|
/// | gate | one made from the authorizer, the diagnostics sink, the tenancy store and the support grant store |
/// | authorizer | [`RoleTableAuthorizer`] (the policy replica when [`policy`](Self::policy) is given) |
/// | diagnostics | none: events are dropped (set a sink from `portal-adapters`) |
/// | clock | [`SystemClock`] |
/// | ids | [`RandomIds`] (UUIDv7) |
/// | workflow store | none: [`Portal::workflows`] is [`ConfigError::NotConfigured`] |
/// | policy store and replica | none: [`Portal::policy`] is [`ConfigError::NotConfigured`] |
/// | support grant store | none: [`Portal::support`] is [`ConfigError::NotConfigured`], and only members reach an org |
/// | authenticator | none: [`Portal::authenticate`] is `internal.error` |
/// | workflow definitions | none (add [`catalog::all`](crate::workflow::catalog::all) for the shipped ones) |
/// | diagnostics journal | none: [`Portal::triage`] is [`ConfigError::NotConfigured`] |
/// | session directory | none: support bundles have no sessions |
/// | audit log | none: [`Portal::audit_trail`] is [`ConfigError::NotConfigured`] |
/// | webhook store | none: [`Portal::webhooks`] is [`ConfigError::NotConfigured`] |
/// | webhook settings | [`WebhookConfig::default`]: https only, public addresses only, a 24-hour rotation window |
///
/// A host that builds services outside the portal (such as
/// `portal_auth::identity::IdentityService`) makes the [`Gate`] first and gives the
/// portal the same one with [`gate`](Self::gate), so that every decision takes one path.
#[derive(Default)]
#[must_use]
pub struct PortalBuilder {
    tenancy_store: Option<Arc<dyn TenancyStore>>,
    gate: Option<Gate>,
    authorizer: Option<Arc<dyn Authorizer>>,
    sink: Option<Arc<dyn DiagnosticSink>>,
    clock: Option<Arc<dyn Clock>>,
    ids: Option<Arc<dyn IdGenerator>>,
    tenancy: TenancyConfig,
    workflow_store: Option<Arc<dyn WorkflowStore>>,
    definitions: Vec<WorkflowDefinition>,
    policy: Option<(Arc<dyn AuditedPolicyStore>, Arc<dyn PolicyReplica>)>,
    support_grants: Option<Arc<dyn SupportGrantStore>>,
    support: SupportConfig,
    authenticator: Option<Arc<dyn Authenticator>>,
    journal: Option<Arc<dyn Journal>>,
    sessions: Option<Arc<dyn SessionDirectory>>,
    triage: TriageConfig,
    audit_log: Option<Arc<dyn AuditLog>>,
    webhook_store: Option<Arc<dyn WebhookStore>>,
    webhook_config: WebhookConfig,
}

impl std::fmt::Debug for PortalBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalBuilder")
            .field("tenancy_store", &self.tenancy_store.is_some())
            .field("gate", &self.gate.is_some())
            .field("authorizer", &self.authorizer.is_some())
            .field("diagnostics", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

/// A sink for when the host configured none: it keeps nothing.
struct DiscardSink;

impl DiagnosticSink for DiscardSink {
    fn record(&self, _event: crate::diagnostics::DiagnosticEvent) {}

    /// Never builds a detail nobody keeps.
    fn record_deferred(
        &self,
        _event: crate::diagnostics::DiagnosticEvent,
        _detail: crate::diagnostics::DeferredDetail,
    ) {
    }
}

/// A sink that keeps nothing, for a [`Gate`] made where no diagnostics are wanted.
pub fn discard_sink() -> Arc<dyn DiagnosticSink> {
    Arc::new(DiscardSink)
}

impl PortalBuilder {
    /// Where tenancy data lives (required).
    pub fn tenancy_store(mut self, store: Arc<dyn TenancyStore>) -> Self {
        self.tenancy_store = Some(store);
        self
    }

    /// The gate every service decides through, made by the host (see
    /// [`Gate::new`]) so that services it builds outside the portal share it. It holds the
    /// authorizer and the diagnostics sink, so neither [`authorizer`](Self::authorizer) nor
    /// [`diagnostics`](Self::diagnostics) may be given with it; it must decide with the
    /// [`policy`](Self::policy) replica and let staff in through the
    /// [`support_grants`](Self::support_grants) store when those are given.
    pub fn gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Where workflow instances live; enables [`Portal::workflows`].
    pub fn workflow_store(mut self, store: Arc<dyn WorkflowStore>) -> Self {
        self.workflow_store = Some(store);
        self
    }

    /// Adds workflow definitions the workflow service runs.
    pub fn workflow_definitions(mut self, definitions: impl IntoIterator<Item = WorkflowDefinition>) -> Self {
        self.definitions.extend(definitions);
        self
    }

    /// Where the policy lives, and the authorizer that holds a copy of it at the store's
    /// revisions (such as `portal_auth::CasbinAuthorizer`, loaded from `store` and kept in
    /// step with other replicas by `portal_auth::sync::follow`). Enables
    /// [`Portal::policy`] (whose custom role changes `store` writes with their audit events),
    /// and makes `replica` the portal's authorizer, replacing any
    /// [`authorizer`](Self::authorizer) given.
    pub fn policy(mut self, store: Arc<dyn AuditedPolicyStore>, replica: Arc<dyn PolicyReplica>) -> Self {
        self.policy = Some((store, replica));
        self
    }

    /// Where support access grants live; enables [`Portal::support`] and lets vendor
    /// staff reach a customer org through an active grant in every service.
    pub fn support_grants(mut self, store: Arc<dyn SupportGrantStore>) -> Self {
        self.support_grants = Some(store);
        self
    }

    /// Support access settings, such as the longest grant.
    pub fn support_config(mut self, config: SupportConfig) -> Self {
        self.support = config;
        self
    }

    /// Who checks credentials for [`Portal::authenticate`], such as
    /// `portal_auth::identity::IdentityService` (passwords, sessions, API keys, and bearer
    /// tokens through the JWT authenticator it is given).
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// The journal the diagnostics sink writes to (usually through a buffered sink of
    /// `portal-adapters`); enables [`Portal::triage`], which reads it back.
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Where support bundles find sessions (the identity store).
    pub fn session_directory(mut self, sessions: Arc<dyn SessionDirectory>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Triage settings: retention per org, the support bundle's window.
    pub fn triage_config(mut self, config: TriageConfig) -> Self {
        self.triage = config;
        self
    }

    /// The customer audit log the stores write their events to (the same database, or
    /// the same `InMemoryAuditLog` the in-memory stores were given); enables
    /// [`Portal::audit_trail`], which reads it back.
    pub fn audit_log(mut self, log: Arc<dyn AuditLog>) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// Where webhook endpoints, deliveries and attempts live (the store the outbox fans
    /// out to: the same database as the audit log); enables [`Portal::webhooks`].
    pub fn webhook_store(mut self, store: Arc<dyn WebhookStore>) -> Self {
        self.webhook_store = Some(store);
        self
    }

    /// Webhook settings: which hosts beyond the public internet an endpoint may name, a
    /// host's own event types, the rotation window.
    pub fn webhook_config(mut self, config: WebhookConfig) -> Self {
        self.webhook_config = config;
        self
    }

    /// Who decides access (not with a [`gate`](Self::gate), which holds its own).
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Where diagnostic events go (not with a [`gate`](Self::gate), which holds its own).
    pub fn diagnostics(mut self, sink: Arc<dyn DiagnosticSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The id generator.
    pub fn ids(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// Tenancy settings, such as the invitation lifetime.
    pub fn tenancy_config(mut self, config: TenancyConfig) -> Self {
        self.tenancy = config;
        self
    }

    /// Builds the portal.
    ///
    /// # Errors
    ///
    /// [`ConfigError`]: no tenancy store; two workflow definitions sharing a name and a
    /// version; a gate given with an authorizer or a sink of its own, or one that does not
    /// fit the policy replica or the support grant store given.
    pub fn build(self) -> Result<Portal, ConfigError> {
        let store = self.tenancy_store.ok_or(ConfigError::MissingTenancyStore)?;
        let ids = self.ids.unwrap_or_else(|| Arc::new(RandomIds::default()));
        let gate = match self.gate {
            Some(gate) => {
                if self.authorizer.is_some() {
                    return Err(ConfigError::ConflictsWithGate("authorizer"));
                }
                if self.sink.is_some() {
                    return Err(ConfigError::ConflictsWithGate("diagnostics"));
                }
                if let Some((_, replica)) = &self.policy {
                    let replica: Arc<dyn Authorizer> = replica.clone();
                    if !gate.decides_with(&replica) {
                        return Err(ConfigError::GateNotOnReplica);
                    }
                }
                if self.support_grants.is_some() && !gate.has_support_grants() {
                    return Err(ConfigError::GateWithoutGrants);
                }
                gate
            }
            None => {
                let authorizer: Arc<dyn Authorizer> = match (&self.policy, self.authorizer) {
                    (Some((_, replica)), _) => replica.clone(),
                    (None, Some(authorizer)) => authorizer,
                    (None, None) => Arc::new(RoleTableAuthorizer::default()),
                };
                let sink = self.sink.unwrap_or_else(discard_sink);
                let gate = Gate::new(authorizer, sink, store.clone());
                match &self.support_grants {
                    Some(grants) => gate.with_support_grants(grants.clone(), ids.clone()),
                    None => gate,
                }
            }
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let workflows = match self.workflow_store {
            Some(workflow_store) => Some(WorkflowService::new(
                workflow_store,
                store.clone(),
                gate.clone(),
                ids.clone(),
                self.definitions,
            )?),
            None => None,
        };
        let tenancy = TenancyService::new(store.clone(), gate.clone(), ids.clone(), self.tenancy);
        let triage = self.journal.map(|journal| {
            let triage = TriageService::new(journal, store.clone(), gate.clone(), self.triage);
            match self.sessions {
                Some(sessions) => triage.with_sessions(sessions),
                None => triage,
            }
        });
        let audit_trail = self
            .audit_log
            .map(|log| AuditTrailService::new(log, gate.clone()).with_actors(store.clone(), ids.clone()));
        let webhooks = self.webhook_store.map(|webhook_store| {
            WebhookService::new(
                webhook_store,
                store.clone(),
                gate.clone(),
                ids.clone(),
                self.webhook_config,
            )
        });
        let support = self
            .support_grants
            .map(|grants| SupportService::new(grants, store.clone(), gate.clone(), ids.clone(), self.support));
        let policy = self.policy.map(|(policy_store, replica)| {
            PolicyService::new(policy_store, replica, store, tenancy.clone(), gate.clone())
        });
        Ok(Portal {
            gate,
            tenancy,
            workflows,
            policy,
            support,
            authenticator: self.authenticator,
            triage,
            audit_trail,
            webhooks,
            clock,
            ids,
        })
    }
}
