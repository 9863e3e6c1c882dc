//! The [`Gate`]: the one path every operation takes to ask "may this actor do this,
//! here?", and to record what was decided and how the operation ended.
//!
//! Every service of the crate, and the identity service of `portal-auth`, holds a clone of
//! one gate and nothing else that decides access: no service calls an [`Authorizer`]
//! itself (a test of the workspace fails when one does). So the three things every
//! operation does are written once:
//!
//! 1. **Reach**: the actor's roles in the org ([`roles`](Gate::roles),
//!    [`roles_or`](Gate::roles_or)): a user's membership, else an active support grant; an
//!    API key only in its own org; a service principal in any existing org. An actor who
//!    cannot reach the org gets the not-found error the caller chooses, so ids cannot be
//!    probed, and an `access.reach` event tells support why.
//! 2. **Decide**: one decision for any principal ([`decide`](Gate::decide),
//!    [`authorize`](Gate::authorize)): users and service principals by the authorizer, an
//!    API key by its scopes alone, through the same code, recorded as an `access.check`
//!    event with its explanation. [`allows`](Gate::allows) asks the same question silently,
//!    for listings and "the actions you may take now"; [`evaluate`](Gate::evaluate) decides
//!    now and records later (the workflow service records once it knows an idempotent
//!    replay does not make the decision moot).
//! 3. **Record the outcome** ([`begin`](Gate::begin) … [`Operation::finish`]): the
//!    operation's event with its duration, its detail or its error, and a storage fault
//!    event when storage failed.
//!
//! The gate reads memberships and grants through two narrow ports,
//! [`MembershipSource`] (every [`TenancyStore`](crate::TenancyStore) is one) and
//! [`GrantSource`] (every [`SupportGrantStore`](crate::support::SupportGrantStore) is
//! one), so it sits below the services in the crate's layers and imports none of them.

mod ports;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

pub use ports::{ActiveGrant, GrantSource, MembershipSource, MfaPolicySource};
#[cfg(feature = "mock")]
pub use ports::{MockGrantSource, MockMembershipSource, MockMfaPolicySource};

use crate::access::{
    AccessError, AccessRequest, Authorizer, Decision, Denial, DenialReason, Domain, Effect, Grant, Name, Permission,
    PolicyRule, RoleName, Scope,
};
use crate::audit::{AuditActor, AuditEvent, AuditTarget, actions};
use crate::context::RequestContext;
use crate::diagnostics::{
    DecisionDetail, DeferredDetail, Detail, DiagnosticEvent, DiagnosticSink, EventKind, record_outcome,
};
use crate::error::{ErrorCode, PortalError};
use crate::ids::{IdGenerator, OrgId, UserId};
use crate::principal::Principal;

/// The one path of access decisions: see the [module docs](self).
///
/// Cheap to clone (an `Arc` inside); build one per portal and hand clones to every
/// service ([`PortalBuilder`](crate::PortalBuilder) does, and takes one the host built
/// itself with [`PortalBuilder::gate`](crate::PortalBuilder::gate) so that services built
/// outside the portal, such as `portal_auth::identity::IdentityService`, share it).
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    authorizer: Arc<dyn Authorizer>,
    sink: Arc<dyn DiagnosticSink>,
    members: Arc<dyn MembershipSource>,
    grants: Option<Grants>,
    mfa: Option<Arc<dyn MfaPolicySource>>,
}

/// Where the gate finds support grants, and the ids of the `support_grant.used` events
/// it has the grant source write.
#[derive(Clone)]
struct Grants {
    source: Arc<dyn GrantSource>,
    ids: Arc<dyn IdGenerator>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("support_grants", &self.inner.grants.is_some())
            .field("mfa_policy", &self.inner.mfa.is_some())
            .finish_non_exhaustive()
    }
}

/// The error of a denial: the same for every operation, so a customer learns nothing
/// from it; the explanation is in the `access.check` event.
pub fn denied() -> PortalError {
    PortalError::new(ErrorCode::AccessDenied, "you are not allowed to do this")
}

/// An access decision made by [`Gate::evaluate`] and not recorded yet: record it with
/// [`Gate::record_verdict`] (or drop it, when the operation made it moot).
#[derive(Debug)]
#[must_use = "a verdict is recorded with Gate::record_verdict, or dropped on purpose"]
pub struct Verdict {
    event: DiagnosticEvent,
    detail: DeferredDetail,
    allowed: bool,
}

impl Verdict {
    /// Whether the request was allowed.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The verdict as a result: `access.denied` for a denial.
    ///
    /// # Errors
    ///
    /// `access.denied` if the request was denied.
    pub fn check(&self) -> Result<(), PortalError> {
        if self.allowed { Ok(()) } else { Err(denied()) }
    }
}

impl Gate {
    /// A gate deciding with `authorizer`, recording in `sink`, and reading memberships
    /// from `members` (such as the portal's `Arc<dyn TenancyStore>`). Only members (and
    /// API keys and service principals) reach an org until support grants are added with
    /// [`with_support_grants`](Self::with_support_grants).
    pub fn new(authorizer: Arc<dyn Authorizer>, sink: Arc<dyn DiagnosticSink>, members: impl MembershipSource) -> Self {
        Self {
            inner: Arc::new(Inner {
                authorizer,
                sink,
                members: Arc::new(members),
                grants: None,
                mfa: None,
            }),
        }
    }

    /// The same gate, also letting vendor staff into an org through an active support
    /// grant in `grants` (such as the portal's `Arc<dyn SupportGrantStore>`). The first
    /// use of each grant is written to the org's audit log as `support_grant.used`, with
    /// an id from `ids` (the portal's generator).
    pub fn with_support_grants(self, grants: impl GrantSource, ids: Arc<dyn IdGenerator>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                authorizer: inner.authorizer.clone(),
                sink: inner.sink.clone(),
                members: inner.members.clone(),
                grants: Some(Grants {
                    source: Arc::new(grants),
                    ids,
                }),
                mfa: inner.mfa.clone(),
            }),
        }
    }

    /// The same gate, also keeping each org's MFA policy: a member of an org that requires
    /// a second factor, who has none (neither a confirmed TOTP factor nor a passkey), is
    /// refused every operation in it with `auth.mfa_required` (before any decision), so
    /// they enroll first. Operations outside orgs (signing in, enrolling a factor,
    /// registering a passkey, their own sessions) are not affected, nor are support staff
    /// (who are no members), API keys or service principals.
    pub fn with_mfa_policy(self, policy: impl MfaPolicySource) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                authorizer: inner.authorizer.clone(),
                sink: inner.sink.clone(),
                members: inner.members.clone(),
                grants: inner.grants.clone(),
                mfa: Some(Arc::new(policy)),
            }),
        }
    }

    /// Whether this gate lets staff in through support grants.
    pub fn has_support_grants(&self) -> bool {
        self.inner.grants.is_some()
    }

    /// Whether `authorizer` is the one this gate decides with (the same object).
    pub fn decides_with(&self, authorizer: &Arc<dyn Authorizer>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.inner.authorizer), Arc::as_ptr(authorizer))
    }

    // -----------------------------------------------------------------------------------
    // Reach
    // -----------------------------------------------------------------------------------

    /// The actor's roles in `org`, or `None` if the actor cannot reach it (recorded as an
    /// `access.reach` event; the caller answers with its own not-found error).
    ///
    /// A user's roles come from their membership, read once per request: roles the
    /// authenticator already read for the request's org travel in the context
    /// ([`RequestContext::roles_in`]) and are used as they are. A user who is not a member
    /// but holds a support grant active at `ctx.now()` gets the grant's role
    /// (`support_readonly` or `support`) for this request, and a `support.access` event
    /// records the staff member, the org and the grant. The grant's first use is also
    /// written to the org's audit log (`support_grant.used`, through
    /// [`GrantSource::record_first_use`]) before the staff member gets in; a grant read
    /// with its first use set writes nothing. An API key reaches only its own
    /// org and a service principal any existing org, both with no roles (they are decided
    /// by principal).
    ///
    /// With an MFA policy ([`with_mfa_policy`](Self::with_mfa_policy)), a member of an org
    /// that requires a second factor who has none is refused with `auth.mfa_required`.
    ///
    /// # Errors
    ///
    /// `auth.mfa_required`; `storage.*` if a store fails (also when a grant's first use
    /// cannot be written: the staff member does not get in unrecorded).
    pub async fn roles(&self, ctx: &RequestContext, org: OrgId) -> Result<Option<Vec<RoleName>>, PortalError> {
        match ctx.principal() {
            Principal::User(user) => {
                if let Some(roles) = ctx.roles_in(org) {
                    self.check_mfa(ctx, org, *user).await?;
                    return Ok(Some(roles.to_vec()));
                }
                if let Some(roles) = self.inner.members.member_roles(org, *user).await? {
                    self.check_mfa(ctx, org, *user).await?;
                    return Ok(Some(roles));
                }
                let grant = match &self.inner.grants {
                    Some(grants) => grants
                        .source
                        .active_grant(*user, org, ctx.now())
                        .await?
                        .map(|grant| (grants, grant)),
                    None => None,
                };
                match grant {
                    Some((grants, grant)) => {
                        if grant.first_used_at.is_none() {
                            self.record_first_use(grants, ctx, org, *user, &grant).await?;
                        }
                        self.record_support_access(ctx, org, &grant);
                        Ok(Some(vec![grant.access.role()]))
                    }
                    None => {
                        self.record_outside(ctx, org);
                        Ok(None)
                    }
                }
            }
            Principal::ApiKey { org: key_org, .. } => {
                if *key_org == org {
                    Ok(Some(Vec::new()))
                } else {
                    self.record_outside(ctx, org);
                    Ok(None)
                }
            }
            Principal::Service(_) => Ok(self.inner.members.org_exists(org).await?.then(Vec::new)),
        }
    }

    /// `auth.mfa_required` when `org` requires a second factor and its member `user` has
    /// none (recorded as an `access.mfa_required` event). What the request's context
    /// already knows ([`RequestContext::mfa_unmet_in`]) is used as it is; otherwise the
    /// policy is read.
    async fn check_mfa(&self, ctx: &RequestContext, org: OrgId, user: crate::ids::UserId) -> Result<(), PortalError> {
        let Some(mfa) = &self.inner.mfa else {
            return Ok(());
        };
        // Read with the session for this request when the authenticator could (one store
        // call for both), else read now.
        let unmet = match ctx.mfa_unmet_in(org) {
            Some(unmet) => unmet,
            None => mfa.mfa_unmet(org, user).await?,
        };
        if !unmet {
            return Ok(());
        }
        let event = DiagnosticEvent::new(ctx, EventKind::PermissionDecision, "access.mfa_required")
            .with_org(org)
            .with_error(ErrorCode::MfaRequired)
            .with_detail(
                crate::diagnostics::schemas::ACCESS_MFA_REQUIRED_V1,
                json!({ "user": user, "org": org }),
            );
        self.record(event);
        Err(PortalError::new(
            ErrorCode::MfaRequired,
            "this organization requires a second factor: enroll one (a TOTP factor, POST /v1/auth/mfa/totp, or a passkey, POST /v1/auth/passkeys/registration) and sign in again",
        ))
    }

    /// [`roles`](Self::roles), with `not_found()` as the error when the actor cannot reach
    /// `org` (`org.not_found`, `workflow.not_found`: whatever the operation answers for an
    /// unknown id).
    ///
    /// # Errors
    ///
    /// `not_found()`; `storage.*`.
    pub async fn roles_or(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        not_found: fn() -> PortalError,
    ) -> Result<Vec<RoleName>, PortalError> {
        self.roles(ctx, org).await?.ok_or_else(not_found)
    }

    /// The actor's roles in `org` (as [`roles_or`](Self::roles_or)), after `permission`
    /// was allowed there (as [`decide`](Self::decide)): the authorization step of most
    /// operations. Returns the roles for further checks.
    ///
    /// # Errors
    ///
    /// `not_found()`; `access.denied`; `access.policy_failure`; `storage.*`.
    pub async fn authorize(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        permission: Permission,
        not_found: fn() -> PortalError,
    ) -> Result<Vec<RoleName>, PortalError> {
        let roles = self.roles_or(ctx, org, not_found).await?;
        self.decide(ctx, Domain::Org(org), &roles, permission.object, permission.action)?;
        Ok(roles)
    }

    // -----------------------------------------------------------------------------------
    // Decide
    // -----------------------------------------------------------------------------------

    /// Decides whether the actor of `ctx`, holding `roles` in `domain`, may do `action` on
    /// `object`; records the decision as an `access.check` event; and turns a denial into
    /// `access.denied`. `roles` must be the actor's roles in `domain` as
    /// [`roles`](Self::roles) found them (none on the platform).
    ///
    /// # Errors
    ///
    /// `access.denied` for a denial; `access.policy_failure` if the authorizer fails.
    pub fn decide(
        &self,
        ctx: &RequestContext,
        domain: Domain,
        roles: &[RoleName],
        object: &str,
        action: &str,
    ) -> Result<(), PortalError> {
        let verdict = self.evaluate(ctx, domain, roles, object, action)?;
        let allowed = verdict.allowed;
        self.record_verdict(verdict);
        if allowed { Ok(()) } else { Err(denied()) }
    }

    /// [`decide`](Self::decide), with the decision handed back unrecorded: record it with
    /// [`record_verdict`](Self::record_verdict) once the operation knows it counts.
    ///
    /// # Errors
    ///
    /// `access.policy_failure` if the authorizer fails (a denial is a [`Verdict`]).
    pub fn evaluate(
        &self,
        ctx: &RequestContext,
        domain: Domain,
        roles: &[RoleName],
        object: &str,
        action: &str,
    ) -> Result<Verdict, PortalError> {
        self.evaluate_as(ctx, ctx.principal(), domain, roles, object, action)
    }

    /// [`evaluate`](Self::evaluate) for `principal` acting within the request `ctx`: a
    /// delegate's vote is decided for the user who delegated it, and recorded under the
    /// delegate's request. `roles` are `principal`'s; an API key's scopes count only when
    /// it is the request's own principal.
    ///
    /// # Errors
    ///
    /// `access.policy_failure` if the authorizer fails.
    pub fn evaluate_as(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        domain: Domain,
        roles: &[RoleName],
        object: &str,
        action: &str,
    ) -> Result<Verdict, PortalError> {
        let request = AccessRequest {
            principal,
            domain,
            roles,
            object,
            action,
        };
        let own = principal == ctx.principal();
        let decision = self.judge(&request, if own { ctx.scopes() } else { &[] })?;
        let mut event = DiagnosticEvent::new(ctx, EventKind::PermissionDecision, "access.check");
        if let Domain::Org(org) = domain {
            event = event.with_org(org);
        }
        let allowed = decision.is_allowed();
        if !allowed {
            event = event.with_error(ErrorCode::AccessDenied);
        }
        let key_scopes = match principal {
            Principal::ApiKey { .. } if own => Some(ctx.scopes_shared()),
            Principal::ApiKey { .. } => Some(Arc::from(Vec::new())),
            Principal::User(_) | Principal::Service(_) => None,
        };
        let detail = DeferredDetail::decision(DecisionDetail::new(&request, decision, key_scopes));
        Ok(Verdict { event, detail, allowed })
    }

    /// Records a decision [`evaluate`](Self::evaluate) made.
    pub fn record_verdict(&self, verdict: Verdict) {
        self.inner.sink.record_deferred(verdict.event, verdict.detail);
    }

    /// Whether the actor of `ctx` may do `action` on `object` in `domain`, decided as
    /// [`decide`](Self::decide) decides but not recorded: for listings and "the actions
    /// you may take now", where a refusal filters rather than fails.
    ///
    /// # Errors
    ///
    /// `access.policy_failure` if the authorizer fails.
    pub fn allows(
        &self,
        ctx: &RequestContext,
        domain: Domain,
        roles: &[RoleName],
        object: &str,
        action: &str,
    ) -> Result<bool, PortalError> {
        let request = AccessRequest {
            principal: ctx.principal(),
            domain,
            roles,
            object,
            action,
        };
        Ok(self.judge(&request, ctx.scopes())?.is_allowed())
    }

    /// The explained decision for `principal` (a user or a service principal, not the
    /// caller) holding `roles` in `domain`, not recorded: what "who can do this" asks of
    /// each member. An API key is decided by its scopes, which only its own request
    /// carries, so here it holds none.
    ///
    /// # Errors
    ///
    /// `access.policy_failure` if the authorizer fails.
    pub fn decision_for(
        &self,
        principal: &Principal,
        domain: Domain,
        roles: &[RoleName],
        object: &str,
        action: &str,
    ) -> Result<Decision, PortalError> {
        let request = AccessRequest {
            principal,
            domain,
            roles,
            object,
            action,
        };
        Ok(self.judge(&request, &[])?)
    }

    /// The one decision: users and service principals by the authorizer, an API key by
    /// `scopes`.
    fn judge(&self, request: &AccessRequest<'_>, scopes: &[Scope]) -> Result<Decision, AccessError> {
        match request.principal {
            Principal::ApiKey { org, .. } => Ok(api_key_decision(*org, scopes, request)),
            Principal::Service(_) => self.inner.authorizer.check(request),
            Principal::User(_) => {
                let decision = self.inner.authorizer.check(request)?;
                if !is_pattern(request.object) && !is_pattern(request.action) {
                    return Ok(decision);
                }
                pattern_decision(decision, request, || {
                    self.inner.authorizer.deny_rules(request.domain, request.roles)
                })
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Record
    // -----------------------------------------------------------------------------------

    /// Starts recording an operation named `name` (such as `tenancy.org.create`): its
    /// duration is measured from now, and [`Operation::finish`] records how it ended.
    pub fn begin<'a>(&'a self, ctx: &'a RequestContext, kind: EventKind, name: &'static str) -> Operation<'a> {
        Operation {
            gate: self,
            ctx,
            kind,
            name,
            org: None,
            started: Instant::now(),
        }
    }

    /// Records an event of the operation's own (an authentication step, an audit record).
    pub fn record(&self, event: DiagnosticEvent) {
        self.inner.sink.record(event);
    }

    /// Records how an operation ended, for an event the caller made itself (see
    /// [`record_outcome`]); [`Operation::finish`] is the usual way.
    pub fn record_outcome<T, D: Into<Detail>>(
        &self,
        event: DiagnosticEvent,
        result: Result<&T, &PortalError>,
        detail: impl FnOnce(&T) -> D,
    ) {
        record_outcome(&*self.inner.sink, event, result, detail);
    }

    /// Records that the actor could not reach `org`: not a member, no active support grant
    /// (or an API key of another org). The caller answers with its own not-found error, so
    /// the customer learns nothing; this `access.reach` event tells support why.
    fn record_outside(&self, ctx: &RequestContext, org: OrgId) {
        let event = DiagnosticEvent::new(ctx, EventKind::PermissionDecision, "access.reach")
            .with_org(org)
            .with_error(ErrorCode::AccessDenied)
            .with_detail(
                "access.reach.v1",
                json!({
                    "org": org,
                    "principal": ctx.principal(),
                    "member": false,
                    "support_grant": false,
                    "home_org": ctx.org().filter(|home| *home != org),
                }),
            );
        self.record(event);
    }

    /// Writes `support_grant.used` for the first use of `grant` by `staff` in `org`: the
    /// staff member as actor (`support_staff`, by their display name now), the grant and
    /// the org as targets. The grant source writes it only if no use was recorded yet, so
    /// of concurrent first uses exactly one is logged.
    async fn record_first_use(
        &self,
        grants: &Grants,
        ctx: &RequestContext,
        org: OrgId,
        staff: UserId,
        grant: &ActiveGrant,
    ) -> Result<(), PortalError> {
        let name = self.inner.members.display_name(staff).await?;
        let expires_at = grant
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
        let event = AuditEvent::new(
            ctx,
            &*grants.ids,
            org,
            actions::SUPPORT_GRANT_USED,
            AuditActor::support_staff(staff, name),
        )
        .target(AuditTarget::new("support_grant", grant.id))
        .target(AuditTarget::new("organization", org))
        .metadata(json!({ "access": grant.access, "expires_at": expires_at }));
        grants.source.record_first_use(org, grant.id, ctx.now(), &event).await?;
        Ok(())
    }

    /// Records that the actor entered `org` through `grant`.
    fn record_support_access(&self, ctx: &RequestContext, org: OrgId, grant: &ActiveGrant) {
        let event = DiagnosticEvent::new(ctx, EventKind::PermissionDecision, "support.access")
            .with_org(org)
            .with_detail(
                "support.access.v1",
                json!({
                    "grant": grant.id,
                    "staff": ctx.principal(),
                    "org": org,
                    "access": grant.access,
                    "role": grant.access.role(),
                    "expires_at": grant.expires_at.unix_timestamp(),
                }),
            );
        self.record(event);
    }
}

/// An operation being recorded: made by [`Gate::begin`], ended by [`finish`](Self::finish).
#[derive(Debug)]
#[must_use = "an operation is recorded when it is finished"]
pub struct Operation<'a> {
    gate: &'a Gate,
    ctx: &'a RequestContext,
    kind: EventKind,
    name: &'static str,
    org: Option<OrgId>,
    started: Instant,
}

impl Operation<'_> {
    /// Files the operation's event under `org` (an [`OrgId`], or `None` for none).
    pub fn in_org(mut self, org: impl Into<Option<OrgId>>) -> Self {
        self.org = org.into();
        self
    }

    /// Files the operation's event under `org` if some, else under the request's org
    /// ([`RequestContext::org`]), if any.
    pub fn in_org_or_context(mut self, org: Option<OrgId>) -> Self {
        self.org = org.or(self.ctx.org());
        self
    }

    /// Records how the operation ended: on success its event with `detail` (under the
    /// schema `<name>.v1`), on failure its error (and a storage fault event when storage
    /// failed). See [`record_outcome`].
    pub fn finish<T, D: Into<Detail>>(self, result: &Result<T, PortalError>, detail: impl FnOnce(&T) -> D) {
        let mut event = DiagnosticEvent::new(self.ctx, self.kind, self.name).with_duration(self.started.elapsed());
        if let Some(org) = self.org {
            event = event.with_org(org);
        }
        self.gate.record_outcome(event, result.as_ref(), detail);
    }
}

/// The decision for an API key: allowed exactly when the request is in the key's own
/// org and one of the key's scopes (from the request context) covers the object and
/// action. The authorizer's roles play no part: a key holds no roles, only its scopes,
/// and every scope was within its creator's permissions when the key was made.
fn api_key_decision(key_org: OrgId, scopes: &[Scope], request: &AccessRequest<'_>) -> Decision {
    let grant = match request.domain {
        Domain::Org(org) if org == key_org => scopes.iter().find(|s| s.allows(request.object, request.action)),
        Domain::Org(_) | Domain::Platform | Domain::AllOrgs => None,
    };
    match grant {
        Some(scope) => Decision::Allowed(Grant {
            rule: PolicyRule {
                subject: Name::from_static("api_key"),
                domain: request.domain,
                object: scope.object().into(),
                action: scope.action().into(),
                effect: Effect::Allow,
            },
            via: vec![Name::from_static("scope")],
        }),
        None => Decision::Denied(Denial {
            reason: DenialReason::NoGrant,
            roles: Vec::new(),
            would_grant: Vec::new(),
        }),
    }
}

/// Whether an object or action is a pattern (`*`, `cases/*`, `cases/{id}`) rather than one
/// object or action.
fn is_pattern(text: &str) -> bool {
    text.contains('*') || text.contains('{')
}

/// The text of a pattern before its first wildcard: every object it matches starts so.
fn literal_prefix(text: &str) -> &str {
    text.find(['*', '{']).map_or(text, |at| &text[..at])
}

/// Whether some object (or action) may match both `a` and `b`. Conservative: it answers
/// `true` unless their literal prefixes part ways (or both are plain and differ).
fn may_overlap(a: &str, b: &str) -> bool {
    if a == "*" || b == "*" || a == b {
        return true;
    }
    if !is_pattern(a) && !is_pattern(b) {
        return false;
    }
    let (pa, pb) = (literal_prefix(a), literal_prefix(b));
    pa.starts_with(pb) || pb.starts_with(pa)
}

/// Whether every object (or action) `requested` matches is matched by the rule's
/// `pattern`. Conservative: `*`, the same text, or `prefix/*` over a request whose text
/// starts with `prefix/` before any wildcard.
fn covers(pattern: &str, requested: &str) -> bool {
    if pattern == "*" || pattern == requested && !requested.contains('{') {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(prefix) if !is_pattern(prefix) => literal_prefix(requested)
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/')),
        _ => false,
    }
}

/// A user's request for a pattern (a scope for a new API key, a grant of a custom role):
/// allowed only if the granting rule covers the whole pattern and no deny rule the user is
/// subject to reaches into it. So a key's scopes and a role's grants never reach what a
/// deny rule forbids the user who wrote them.
fn pattern_decision(
    decision: Decision,
    request: &AccessRequest<'_>,
    deny_rules: impl FnOnce() -> Result<Vec<PolicyRule>, AccessError>,
) -> Result<Decision, AccessError> {
    let Decision::Allowed(grant) = &decision else {
        return Ok(decision);
    };
    let denied = |reason| {
        Decision::Denied(Denial {
            reason,
            roles: request.roles.to_vec(),
            would_grant: Vec::new(),
        })
    };
    if !covers(grant.rule.object.as_str(), request.object) || !covers(grant.rule.action.as_str(), request.action) {
        return Ok(denied(DenialReason::NoGrant));
    }
    if let Some(rule) = deny_rules()?.into_iter().find(|rule| {
        may_overlap(rule.object.as_str(), request.object) && may_overlap(rule.action.as_str(), request.action)
    }) {
        return Ok(denied(DenialReason::ExplicitDeny { rule }));
    }
    Ok(decision)
}
