//! Policy administration: `PolicyService`, custom roles per org, role assignment, and the two questions support
//! asks ("what can this member do", "who can do this"), each authorized and recorded.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::{
    Decision, Domain, Effect, EffectivePermission, Grant, PolicyChange, PolicyLine, PolicyReplica, PolicyRule,
    PolicyStore, Revision, is_builtin_role,
};
use crate::audit::{AuditEvent, AuditTarget, CatalogEntry, actions};
use crate::context::{Principal, RequestContext};
use crate::diagnostics::EventKind;
use crate::error::{ErrorCode, PortalError};
use crate::gate::Gate;
use crate::ids::{OrgId, UserId};
use crate::store::{Page, PageRequest, StoreError};
use crate::tenancy::{Membership, RoleName, RoleSet, TenancyService, TenancyStore};

/// The permissions policy administration asks for, as `(object, action)`, in the org.
///
/// Assigning or unassigning a role `r` asks what
/// [`TenancyService::set_member_roles`] asks: `members write` and `roles/r assign`.
pub use crate::access::permissions;

use permissions as perm;

/// A [`PolicyStore`] that also writes a custom role's change with its audit event (the
/// outbox): what [`PolicyService`] and [`Portal`](crate::Portal) hold.
///
/// It is a port of its own, beside `PolicyStore`, because the audit log sits above the
/// access vocabulary: `access` imports no concept. Every backend's policy store is one.
///
/// The contract of [`apply_audited`](Self::apply_audited) is `apply`'s, plus: when the
/// call changes at least one line, `event` is written in the same transaction (memory:
/// under the same lock, after the change was planned), and the webhook deliveries it
/// fans out to with it; a change whose event cannot be written (a duplicate id, a
/// refusing trigger, a lost connection) is not stored. A call that changes nothing writes
/// no event, so an event never exists without its change. Conformance:
/// `portal_core::testing::admin_audit` (`admin_audit_conformance!`).
#[async_trait]
pub trait AuditedPolicyStore: PolicyStore {
    /// `apply(added, removed)` and, if it changed a line, `event`, in one transaction.
    ///
    /// # Errors
    ///
    /// As [`PolicyStore::apply`]; [`Conflict::AlreadyExists`](crate::store::Conflict)
    /// (`audit event`) for an event id already in the log; on any error nothing was
    /// written.
    async fn apply_audited(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: &AuditEvent,
    ) -> Result<Revision, StoreError>;
}

#[cfg(feature = "mock")]
mockall::mock! {
    /// A mock [`AuditedPolicyStore`] (and so [`PolicyStore`]), for fault tests.
    pub AuditedPolicyStore {}

    #[async_trait]
    impl PolicyStore for AuditedPolicyStore {
        async fn load(&self) -> Result<(Revision, Vec<PolicyLine>), StoreError>;
        async fn load_domain(&self, domain: Domain) -> Result<Vec<PolicyLine>, StoreError>;
        async fn apply(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<Revision, StoreError>;
        async fn changes_since(&self, revision: Revision) -> Result<Option<Vec<PolicyChange>>, StoreError>;
        async fn trim_changes(&self, through: Revision) -> Result<(), StoreError>;
    }

    #[async_trait]
    impl AuditedPolicyStore for AuditedPolicyStore {
        async fn apply_audited(
            &self,
            added: &[PolicyLine],
            removed: &[PolicyLine],
            event: &AuditEvent,
        ) -> Result<Revision, StoreError>;
    }
}

/// One grant (or denial) of a custom role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RolePermission {
    /// The object or pattern, such as `reports` or `cases/*`.
    pub object: String,
    /// The action or `*`.
    pub action: String,
    /// Allow, or deny (which wins over any allow, the role's parents' included).
    pub effect: Effect,
}

impl RolePermission {
    /// An allow of `action` on `object`.
    pub fn allow(object: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            action: action.into(),
            effect: Effect::Allow,
        }
    }

    /// A deny of `action` on `object`.
    pub fn deny(object: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            action: action.into(),
            effect: Effect::Deny,
        }
    }
}

/// A role an organization defines: its permission lines and an optional parent whose
/// grants it inherits, all in the org's own domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomRole {
    /// Its name; never a built-in role's.
    pub name: RoleName,
    /// The role it inherits from, built-in or custom.
    pub parent: Option<RoleName>,
    /// Its own grants and denials, sorted.
    pub permissions: Vec<RolePermission>,
}

impl CustomRole {
    /// The policy lines that define the role in `org`.
    pub fn lines(&self, org: OrgId) -> Vec<PolicyLine> {
        let domain = Domain::Org(org);
        let mut lines: Vec<PolicyLine> = self
            .permissions
            .iter()
            .map(|p| {
                PolicyLine::Permission(PolicyRule {
                    subject: self.name.as_str().into(),
                    domain,
                    object: p.object.as_str().into(),
                    action: p.action.as_str().into(),
                    effect: p.effect,
                })
            })
            .collect();
        if let Some(parent) = &self.parent {
            lines.push(PolicyLine::Inherit {
                role: self.name.as_str().to_owned(),
                parent: parent.as_str().to_owned(),
                domain,
            });
        }
        lines
    }
}

/// A member and the rule that lets them do something (for [`PolicyService::who_can`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The member.
    pub user: UserId,
    /// Their roles in the org.
    pub roles: RoleSet,
    /// The rule that grants it and the role chain to it.
    pub grant: Grant,
}

/// Policy administration: custom roles, role assignment, and introspection.
///
/// Every operation follows the service path: the actor's membership, then the
/// [`PolicyReplica`] (the authorizer) decides; the input is validated (also by a dry run
/// of the authorizer, so no line it would refuse reaches the store); one
/// [`PolicyStore::apply`] commits the change; the change is applied to the local
/// authorizer at once, so the writer sees it on its next check (other replicas follow
/// the store through a `PolicyFeed`); and a diagnostic event records the outcome. A
/// change returns the store's [`Revision`].
///
/// Assignments are memberships, not policy: [`assign_role`](Self::assign_role) and
/// [`unassign_role`](Self::unassign_role) go through
/// [`TenancyService::set_member_roles`], with its checks and its last-owner rule.
#[derive(Clone)]
pub struct PolicyService {
    store: Arc<dyn AuditedPolicyStore>,
    replica: Arc<dyn PolicyReplica>,
    tenancy_store: Arc<dyn TenancyStore>,
    tenancy: TenancyService,
    gate: Gate,
}

impl std::fmt::Debug for PolicyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyService")
            .field("revision", &self.replica.revision())
            .finish_non_exhaustive()
    }
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

fn role_not_found(name: &str) -> PortalError {
    PortalError::new(
        ErrorCode::RoleNotFound,
        format!("no role `{name}` in this organization"),
    )
    .with_param("role")
}

/// How many members a page of [`TenancyStore::list_members`] holds while scanning.
const SCAN_PAGE: usize = 200;

impl PolicyService {
    /// Assembles the service from its ports. `tenancy` must run on `tenancy_store`, and
    /// `gate` (the tenancy service's too) must decide with `replica`, as
    /// [`Portal`](crate::Portal) builds them.
    pub fn new(
        store: Arc<dyn AuditedPolicyStore>,
        replica: Arc<dyn PolicyReplica>,
        tenancy_store: Arc<dyn TenancyStore>,
        tenancy: TenancyService,
        gate: Gate,
    ) -> Self {
        Self {
            store,
            replica,
            tenancy_store,
            tenancy,
            gate,
        }
    }

    /// The revision of the policy this replica's checks see now.
    pub fn revision(&self) -> Revision {
        self.replica.revision()
    }

    /// Whether the actor may do `action` on `object` in `org`, for the host's own
    /// resources (`reports`, `invoices/inv_1`): the actor's roles come from their
    /// membership, and the decision is recorded.
    ///
    /// # Errors
    ///
    /// `org.not_found` (also when the actor is not a member); `access.denied`;
    /// `access.policy_failure`; `storage.*`.
    pub async fn check(&self, ctx: &RequestContext, org: OrgId, object: &str, action: &str) -> Result<(), PortalError> {
        let roles = self.actor_roles(ctx, org).await?;
        self.gate.decide(ctx, Domain::Org(org), &roles, object, action)
    }

    /// A page of the org's custom roles, by name: the `next` cursor is the last name
    /// answered. Asks `roles read`.
    ///
    /// The roles are defined by the org's policy lines, which the store answers as one
    /// domain ([`PolicyStore::load_domain`], the
    /// read the authorizer makes too); the page bounds what is answered, not that read.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*` (`storage.failure` also for a stored line that is not a valid role
    /// definition).
    pub async fn list_roles(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        page: &PageRequest,
    ) -> Result<Page<CustomRole>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "policy.role.list");
        let result = async {
            self.gate.authorize(ctx, org, perm::ROLES_READ, org_not_found).await?;
            let size = page.size()?;
            let after = page
                .after
                .as_ref()
                .map(|cursor| {
                    RoleName::new(cursor.as_str()).map_err(|_| {
                        PortalError::invalid_field("cursor", "the cursor is not one this listing returned")
                    })
                })
                .transpose()?;
            let roles: Vec<CustomRole> = self
                .custom_roles(org)
                .await?
                .into_iter()
                .filter(|r| after.as_ref().is_none_or(|a| r.name.as_str() > a.as_str()))
                .take(size + 1)
                .collect();
            Ok(Page::from_overfetch(roles, size, |r| r.name.as_str().to_owned()))
        }
        .await;
        op.in_org(org).finish(
            &result,
            |roles: &Page<CustomRole>| json!({ "count": roles.items.len() }),
        );
        result
    }

    /// Defines a custom role in `org`. Asks `roles manage`; and, so that nobody writes a
    /// role more powerful than themselves, the actor must be allowed every permission the
    /// role allows (its object and action, as written) and `roles/<parent> assign`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `role.builtin` for a built-in name;
    /// `role.already_exists`; `role.not_found` (param `parent`) for an unknown parent;
    /// `validation.invalid_field` (`permissions` for none and no parent;
    /// `permissions[i].object` or `permissions[i].action` for an entry that is empty,
    /// too long or that the authorizer refuses, `i` counting in the order given; `policy`
    /// for a change the authorizer refuses as a whole, such as a cycle); `storage.*`.
    pub async fn create_role(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        role: CustomRole,
    ) -> Result<(CustomRole, Revision), PortalError> {
        self.write_role(ctx, org, role, "policy.role.create", false).await
    }

    /// Replaces a custom role's permissions and parent. Asks as
    /// [`create_role`](Self::create_role) does.
    ///
    /// # Errors
    ///
    /// As `create_role`, with `role.not_found` for a role the org does not define instead
    /// of `role.already_exists`.
    pub async fn update_role(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        role: CustomRole,
    ) -> Result<(CustomRole, Revision), PortalError> {
        self.write_role(ctx, org, role, "policy.role.update", true).await
    }

    /// Deletes a custom role. Asks `roles manage`. A role that members hold, or that
    /// another role inherits from, is not deleted: unassign it first, so that a role of
    /// the same name defined later grants nothing to anyone by surprise.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `role.builtin`; `role.not_found`; `role.in_use`;
    /// `storage.*`.
    pub async fn delete_role(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        name: &RoleName,
    ) -> Result<Revision, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "policy.role.delete");
        let result = async {
            self.gate.authorize(ctx, org, perm::ROLES_MANAGE, org_not_found).await?;
            refuse_builtin(name)?;
            let roles = self.custom_roles(org).await?;
            let current = roles
                .iter()
                .find(|r| &r.name == name)
                .ok_or_else(|| role_not_found(name.as_str()))?;
            if let Some(child) = roles.iter().find(|r| r.parent.as_ref() == Some(name)) {
                return Err(PortalError::new(
                    ErrorCode::RoleInUse,
                    format!("role `{}` inherits from `{name}`", child.name),
                )
                .with_param("role"));
            }
            if let Some(holder) = self.first_holder(org, name).await? {
                return Err(
                    PortalError::new(ErrorCode::RoleInUse, format!("member `{holder}` holds role `{name}`"))
                        .with_param("role"),
                );
            }
            let event = self
                .role_event(ctx, org, actions::ROLE_DELETED, name)
                .await?
                .metadata(role_summary(current));
            self.commit(&[], &current.lines(org), &event).await
        }
        .await;
        op.in_org(org)
            .finish(&result, |revision| json!({ "role": name, "revision": revision.0 }));
        result
    }

    /// Gives `user` the role `role` in `org` (built-in or custom), keeping their other
    /// roles: a change of the membership, through
    /// [`TenancyService::set_member_roles`], which asks `members write` and
    /// `roles/<role> assign`. Giving a role the member holds changes nothing.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `role.not_found` for a role
    /// the org does not define; `validation.invalid_field` (`roles`) past
    /// [`RoleSet::MAX`]; `storage.*`.
    pub async fn assign_role(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user: UserId,
        role: &RoleName,
    ) -> Result<Membership, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "policy.role.assign");
        let result = async {
            // Membership first: an outsider learns nothing about the org's roles. Whether
            // the role exists, and whether the member can hold one more, is answered only
            // once `members write` was allowed (a viewer gets `access.denied`).
            self.actor_roles(ctx, org).await?;
            let defined =
                is_builtin_role(role.as_str()) || self.custom_roles(org).await?.iter().any(|r| &r.name == role);
            self.tenancy
                .change_member_roles(ctx, org, user, |current| {
                    if !defined {
                        return Err(role_not_found(role.as_str()));
                    }
                    Ok(current.iter().chain([role]).cloned().collect())
                })
                .await
        }
        .await;
        op.in_org(org)
            .finish(&result, |m| json!({ "user": m.user, "role": role, "roles": m.roles }));
        result
    }

    /// Takes the role `role` away from `user` in `org`, through
    /// [`TenancyService::set_member_roles`] (`members write`, `roles/<role> assign`, and
    /// the last-owner rule). A member keeps at least one role: to take the last one, remove
    /// the member.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `role.not_found` if the
    /// member does not hold it; `member.last_owner`; `member.last_role` for the member's
    /// only role (a conflict with the membership's state, not a bad request); `storage.*`.
    pub async fn unassign_role(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user: UserId,
        role: &RoleName,
    ) -> Result<Membership, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "policy.role.unassign");
        let result = async {
            // `members write` and `roles/<role> assign` come before whether the member holds
            // the role or would keep one: a viewer gets `access.denied`, not a validation
            // error about someone else's membership.
            self.actor_roles(ctx, org).await?;
            self.tenancy
                .change_member_roles(ctx, org, user, |current| {
                    if !current.contains(role) {
                        return Err(role_not_found(role.as_str()));
                    }
                    if current.iter().count() == 1 {
                        return Err(PortalError::new(
                            ErrorCode::LastRole,
                            format!("`{role}` is the member's only role; remove the member instead"),
                        )
                        .with_param("role"));
                    }
                    Ok(current.iter().filter(|r| *r != role).cloned().collect())
                })
                .await
        }
        .await;
        op.in_org(org)
            .finish(&result, |m| json!({ "user": m.user, "role": role, "roles": m.roles }));
        result
    }

    /// What `user` may do in `org`: every rule their roles reach through inheritance,
    /// the template's built-in grants included, each with its role chain. Deny rules are
    /// listed too (they win over any allow). Asks `roles read`, or only `org read` when
    /// the actor asks about themselves.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `storage.*`.
    pub async fn member_permissions(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user: UserId,
    ) -> Result<Vec<EffectivePermission>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "policy.member.permissions");
        let result = async {
            let wanted = if ctx.principal().user() == Some(user) {
                perm::SELF_PERMISSIONS_READ
            } else {
                perm::ROLES_READ
            };
            self.gate.authorize(ctx, org, wanted, org_not_found).await?;
            let member = self.member(org, user).await?;
            Ok(self.replica.permissions(Domain::Org(org), &member.roles.to_vec()))
        }
        .await;
        op.in_org(org)
            .finish(&result, |p| json!({ "user": user, "count": p.len() }));
        result
    }

    /// The members of `org` whose roles let them do `action` on `object`, by user id, each
    /// with the granting rule. Asks `roles read`. It asks the authorizer once per member.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `access.policy_failure`; `storage.*`.
    pub async fn who_can(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        object: &str,
        action: &str,
    ) -> Result<Vec<Holder>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "policy.who_can");
        let result = async {
            self.gate.authorize(ctx, org, perm::ROLES_READ, org_not_found).await?;
            let mut holders = Vec::new();
            for member in self.all_members(org).await? {
                let principal = Principal::User(member.user);
                let roles = member.roles.to_vec();
                if let Decision::Allowed(grant) =
                    self.gate
                        .decision_for(&principal, Domain::Org(org), &roles, object, action)?
                {
                    holders.push(Holder {
                        user: member.user,
                        roles: member.roles,
                        grant,
                    });
                }
            }
            Ok(holders)
        }
        .await;
        op.in_org(org).finish(
            &result,
            |h| json!({ "object": object, "action": action, "count": h.len() }),
        );
        result
    }

    async fn write_role(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        role: CustomRole,
        name: &'static str,
        existing: bool,
    ) -> Result<(CustomRole, Revision), PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, name);
        let result = async {
            let actor_roles = self.gate.authorize(ctx, org, perm::ROLES_MANAGE, org_not_found).await?;
            // No escalation: the actor may only write what they could do or assign. Asked
            // before the role is validated, so that only an actor allowed to write it
            // learns whether its name, shape or parent would do.
            if let Some(parent) = &role.parent {
                self.gate.decide(
                    ctx,
                    Domain::Org(org),
                    &actor_roles,
                    &format!("roles/{parent}"),
                    "assign",
                )?;
            }
            for p in role.permissions.iter().filter(|p| p.effect == Effect::Allow) {
                self.gate
                    .decide(ctx, Domain::Org(org), &actor_roles, &p.object, &p.action)?;
            }
            refuse_builtin(&role.name)?;
            let role = normalized(role)?;
            self.check_permissions(org, &role)?;
            let role = sorted(role);
            let roles = self.custom_roles(org).await?;
            let current = roles.iter().find(|r| r.name == role.name);
            match (existing, current) {
                (false, Some(_)) => {
                    return Err(PortalError::new(
                        ErrorCode::RoleExists,
                        format!("role `{}` already exists in this organization", role.name),
                    )
                    .with_param("name"));
                }
                (true, None) => return Err(role_not_found(role.name.as_str())),
                _ => {}
            }
            if let Some(parent) = &role.parent
                && !is_builtin_role(parent.as_str())
                && !roles.iter().any(|r| &r.name == parent)
            {
                return Err(role_not_found(parent.as_str()).with_param("parent"));
            }
            let removed = current.map(|c| c.lines(org)).unwrap_or_default();
            let event = match current {
                None => self
                    .role_event(ctx, org, actions::ROLE_CREATED, &role.name)
                    .await?
                    .metadata(role_summary(&role)),
                Some(before) => self
                    .role_event(ctx, org, actions::ROLE_UPDATED, &role.name)
                    .await?
                    .metadata(json!({ "before": role_summary(before), "after": role_summary(&role) })),
            };
            let revision = self.commit(&role.lines(org), &removed, &event).await?;
            Ok((role, revision))
        }
        .await;
        op.in_org(org).finish(&result, |(r, revision)| {
            json!({ "role": r.name, "parent": r.parent, "permissions": r.permissions, "revision": revision.0 })
        });
        result
    }

    /// Asks the authorizer whether it takes each permission of `role` (in the order the
    /// caller gave them), so that a refusal names the entry and its field
    /// (`permissions[2].action`) rather than the policy as a whole.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` with the param `permissions[i].object` or
    /// `permissions[i].action`.
    fn check_permissions(&self, org: OrgId, role: &CustomRole) -> Result<(), PortalError> {
        let line = |object: &str, action: &str, effect| {
            PolicyLine::Permission(PolicyRule {
                subject: role.name.as_str().into(),
                domain: Domain::Org(org),
                object: object.into(),
                action: action.into(),
                effect,
            })
        };
        for (i, p) in role.permissions.iter().enumerate() {
            if let Err(err) = self.replica.validate(&[line(&p.object, &p.action, p.effect)], &[]) {
                // The object alone, with an action every authorizer takes: if that passes,
                // the action was refused.
                let object_ok = self.replica.validate(&[line(&p.object, "*", p.effect)], &[]).is_ok();
                let field = if object_ok { "action" } else { "object" };
                return Err(err.with_param(format!("permissions[{i}].{field}")));
            }
        }
        Ok(())
    }

    /// The audit event `entry` about the custom role `role` in `org`, for this request.
    async fn role_event(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        entry: CatalogEntry,
        role: &RoleName,
    ) -> Result<AuditEvent, PortalError> {
        Ok(self
            .tenancy
            .audit_event(ctx, org, entry)
            .await?
            .target(AuditTarget::new("role", role)))
    }

    /// Validates the change on the authorizer, commits it to the store with its audit
    /// `event` (written only if a line changed), and brings the local authorizer to the
    /// store's revision: the change itself when it directly follows what the authorizer
    /// holds, else the log since then (other replicas' changes the feed has not delivered
    /// yet come first), or everything if the log was trimmed.
    async fn commit(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: &AuditEvent,
    ) -> Result<Revision, PortalError> {
        self.replica.validate(added, removed)?;
        let before = self.replica.revision();
        let revision = self.store.apply_audited(added, removed, event).await?;
        if revision <= before {
            // Nothing changed, or a feed follower applied it already.
            return Ok(revision);
        }
        if revision == before.next() {
            self.replica.apply_change(&PolicyChange {
                revision,
                added: added.to_vec(),
                removed: removed.to_vec(),
            })?;
            return Ok(revision);
        }
        match self.store.changes_since(before).await? {
            Some(changes) => {
                for change in &changes {
                    self.replica.apply_change(change)?;
                }
            }
            None => {
                let (at, lines) = self.store.load().await?;
                self.replica.replace_all(at, &lines)?;
            }
        }
        Ok(revision)
    }

    /// The org's custom roles, read from the store (the source of truth), by name.
    async fn custom_roles(&self, org: OrgId) -> Result<Vec<CustomRole>, PortalError> {
        let lines = self.store.load_domain(Domain::Org(org)).await?;
        let mut roles: std::collections::BTreeMap<String, CustomRole> = std::collections::BTreeMap::new();
        let corrupt = |name: &str| {
            PortalError::new(ErrorCode::StorageFailure, "storage failed").with_source(crate::error::BoxError::from(
                format!("stored role name `{name}` is invalid"),
            ))
        };
        for line in lines {
            let (subject, parent, permission) = match line {
                PolicyLine::Permission(rule) => (
                    String::from(rule.subject),
                    None,
                    Some(RolePermission {
                        object: rule.object.into(),
                        action: rule.action.into(),
                        effect: rule.effect,
                    }),
                ),
                PolicyLine::Inherit { role, parent, .. } => (role, Some(parent), None),
            };
            let entry = match roles.entry(subject) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let name = RoleName::new(e.key()).map_err(|_| corrupt(e.key()))?;
                    e.insert(CustomRole {
                        name,
                        parent: None,
                        permissions: Vec::new(),
                    })
                }
            };
            if let Some(parent) = parent {
                entry.parent = Some(RoleName::new(&parent).map_err(|_| corrupt(&parent))?);
            }
            entry.permissions.extend(permission);
        }
        Ok(roles
            .into_values()
            .filter(|r| !is_builtin_role(r.name.as_str()))
            .map(|mut r| {
                r.permissions.sort();
                r
            })
            .collect())
    }

    async fn member(&self, org: OrgId, user: UserId) -> Result<Membership, PortalError> {
        self.tenancy_store
            .get_membership(org, user)
            .await?
            .ok_or_else(|| PortalError::new(ErrorCode::MemberNotFound, "member not found"))
    }

    async fn all_members(&self, org: OrgId) -> Result<Vec<Membership>, PortalError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.tenancy_store.list_members(org, after, SCAN_PAGE).await?;
            let done = page.len() < SCAN_PAGE;
            after = page.last().map(|m| m.user);
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    async fn first_holder(&self, org: OrgId, role: &RoleName) -> Result<Option<UserId>, PortalError> {
        Ok(self
            .all_members(org)
            .await?
            .into_iter()
            .find(|m| m.roles.contains(role))
            .map(|m| m.user))
    }

    /// The actor's roles in `org` (membership, else an active support grant); an actor who
    /// cannot reach it gets `org.not_found`.
    async fn actor_roles(&self, ctx: &RequestContext, org: OrgId) -> Result<Vec<RoleName>, PortalError> {
        self.gate.roles_or(ctx, org, org_not_found).await
    }
}

/// Built-in roles are the template's: an org cannot define, redefine or delete them.
fn refuse_builtin(name: &RoleName) -> Result<(), PortalError> {
    if is_builtin_role(name.as_str()) {
        return Err(PortalError::new(
            ErrorCode::RoleBuiltin,
            format!("`{name}` is a built-in role and cannot be defined or deleted"),
        )
        .with_param("name"));
    }
    Ok(())
}

/// Checks a role's shape: a permission or a parent, no self-inheritance, each permission's
/// object and action named by its index when refused.
fn normalized(role: CustomRole) -> Result<CustomRole, PortalError> {
    if role.permissions.is_empty() && role.parent.is_none() {
        return Err(PortalError::invalid_field(
            "permissions",
            "a role needs at least one permission or a parent",
        ));
    }
    if role.parent.as_ref() == Some(&role.name) {
        return Err(PortalError::invalid_field(
            "parent",
            "a role cannot inherit from itself",
        ));
    }
    let ok = |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(|c| c.is_control() || c == ',');
    for (i, p) in role.permissions.iter().enumerate() {
        for (field, value) in [("object", &p.object), ("action", &p.action)] {
            if !ok(value) {
                return Err(PortalError::invalid_field(
                    format!("permissions[{i}].{field}"),
                    "objects and actions are 1 to 256 characters, without commas or control characters",
                ));
            }
        }
    }
    Ok(role)
}

/// A role as its audit events show it: the parent and the permissions the org's API
/// shows, never policy lines.
fn role_summary(role: &CustomRole) -> serde_json::Value {
    json!({ "parent": role.parent, "permissions": role.permissions })
}

/// `role` with its permissions sorted and without duplicates, as it is stored.
fn sorted(mut role: CustomRole) -> CustomRole {
    role.permissions.sort();
    role.permissions.dedup();
    role
}
