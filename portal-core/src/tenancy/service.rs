//! `TenancyService`: the tenancy use cases, each authorized, validated, atomic and recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::json;
use time::Duration;

use super::{
    ApiVersionName, DisplayName, Email, Invitation, InvitationState, InvitationToken, Membership, Metadata, OrgName,
    Organization, RoleName, RoleSet, Slug, TenancyStore, User,
};
use crate::access::{Domain, Permission, SUPPORT_READONLY_ROLE, SUPPORT_ROLE};
use crate::audit::{AuditActor, AuditEvent, AuditTarget, CatalogEntry, actions};
use crate::context::{Principal, RequestContext};
use crate::diagnostics::EventKind;
use crate::error::{ErrorCode, PortalError};
use crate::gate::{Gate, denied};
use crate::ids::{IdGenerator, InvitationId, OrgId, UserId};
use crate::store::{Page, PageRequest};

/// The permissions tenancy operations ask for, as `(object, action)`: the constants of
/// [`access::permissions`](crate::access::permissions).
///
/// Assigning or removing a role `r` additionally asks for `roles/r assign`, so that an
/// admin cannot make someone an owner unless the policy lets admins assign `owner`.
pub use crate::access::permissions;

use permissions as perm;

/// Refuses the support roles (`support`, `support_readonly`) as membership roles: they
/// reach an org only through a support access grant, which has a reason, an expiry and
/// an audit trail. A member holding one would be support staff without any of these.
fn refuse_grant_only_roles<'r>(mut roles: impl Iterator<Item = &'r RoleName>) -> Result<(), PortalError> {
    match roles.find(|r| [SUPPORT_ROLE, SUPPORT_READONLY_ROLE].contains(&r.as_str())) {
        Some(role) => Err(PortalError::invalid_field(
            "roles",
            format!("`{role}` is given only through a support access grant, never as a membership role"),
        )),
        None => Ok(()),
    }
}

/// Settings of the tenancy use cases.
#[derive(Debug, Clone)]
pub struct TenancyConfig {
    /// How long an invitation stays usable. Seven days by default.
    pub invitation_ttl: Duration,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            invitation_ttl: Duration::days(7),
        }
    }
}

/// A user to create. Fields are raw input; the service validates them.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Their email address (normalized by the service).
    pub email: String,
    /// How they are shown.
    pub display_name: String,
}

/// An organization to create. Fields are raw input; the service validates them.
#[derive(Debug, Clone, Default)]
pub struct NewOrg {
    /// The unique URL name.
    pub slug: String,
    /// The display name.
    pub name: String,
    /// Integrator data.
    pub metadata: BTreeMap<String, String>,
    /// Who becomes its owner: the acting user when `None`. A user may only name
    /// themselves; a service principal must name someone.
    pub owner: Option<UserId>,
}

/// Changes to an organization; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct OrgUpdate {
    /// A new display name.
    pub name: Option<String>,
    /// New metadata, replacing the old.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// One of a user's organizations, with their roles there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserOrg {
    /// The organization.
    pub org: Organization,
    /// The membership.
    pub membership: Membership,
}

/// The tenancy use cases.
///
/// Every operation follows the same path: authorize through the [`Gate`] (the actor's
/// membership, then the authorizer), validate, one atomic store call, record the outcome
/// through the gate, return a typed result or a [`PortalError`] with a stable code. An organization the actor is not
/// a member of answers `org.not_found`, never `access.denied`, so ids cannot be probed.
#[derive(Clone)]
pub struct TenancyService {
    store: Arc<dyn TenancyStore>,
    gate: Gate,
    ids: Arc<dyn IdGenerator>,
    config: TenancyConfig,
}

impl std::fmt::Debug for TenancyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenancyService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The `org.updated` metadata of the change from `before` to `after`, or `None` when
/// nothing changed: which fields, the name before and after, and the metadata keys added,
/// removed or given another value (never the values).
fn org_change(before: &Organization, after: &Organization) -> Option<serde_json::Value> {
    let mut changed = Vec::new();
    let mut out = serde_json::Map::new();
    if before.name != after.name {
        changed.push("name");
        out.insert(
            "name".to_owned(),
            json!({ "before": before.name.as_str(), "after": after.name.as_str() }),
        );
    }
    let (old, new) = (before.metadata.entries(), after.metadata.entries());
    let keys: BTreeSet<&String> = old
        .keys()
        .chain(new.keys())
        .filter(|key| old.get(*key) != new.get(*key))
        .collect();
    if !keys.is_empty() {
        changed.push("metadata");
        out.insert("metadata_keys".to_owned(), json!(keys));
    }
    if changed.is_empty() {
        return None;
    }
    out.insert("changed".to_owned(), json!(changed));
    Some(serde_json::Value::Object(out))
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

impl TenancyService {
    /// Assembles the service from its store and the portal's [`Gate`].
    pub fn new(store: Arc<dyn TenancyStore>, gate: Gate, ids: Arc<dyn IdGenerator>, config: TenancyConfig) -> Self {
        Self {
            store,
            gate,
            ids,
            config,
        }
    }

    /// Creates a user. Asks `users create` in the platform domain (by default only a
    /// service principal, such as the host's sign-up handler, has it).
    ///
    /// # Errors
    ///
    /// `access.denied`; `validation.invalid_field` (`email`, `display_name`);
    /// `user.email_taken`; `storage.*`.
    pub async fn create_user(&self, ctx: &RequestContext, new: NewUser) -> Result<User, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "tenancy.user.create");
        let result = async {
            self.decide_platform(ctx, perm::USERS_CREATE)?;
            let user = User {
                id: UserId::generate(&*self.ids, ctx.now()),
                email: Email::new(&new.email)?,
                display_name: DisplayName::new(&new.display_name)?,
                created_at: ctx.now(),
            };
            self.store.create_user(&user).await?;
            Ok(user)
        }
        .await;
        op.in_org_or_context(None).finish(&result, |u| json!({ "user": u.id }));
        result
    }

    /// Creates an organization; its owner (the acting user, or `new.owner`) becomes its
    /// first member with the `owner` role. Asks `orgs create` in the platform domain.
    ///
    /// # Errors
    ///
    /// `access.denied`; `validation.invalid_field` (`slug`, `name`, `metadata`, `owner`);
    /// `org.slug_taken`; `user.not_found` (the owner); `storage.*`.
    pub async fn create_org(&self, ctx: &RequestContext, new: NewOrg) -> Result<Organization, PortalError> {
        self.insert_org(ctx, new, None).await
    }

    /// Creates an organization as [`create_org`](Self::create_org) does, pinned to the API
    /// `version` in the same transaction ([`TenancyStore::create_pinned_org`]): the org
    /// never exists without its pin.
    ///
    /// # Errors
    ///
    /// As [`create_org`](Self::create_org).
    pub async fn create_pinned_org(
        &self,
        ctx: &RequestContext,
        new: NewOrg,
        version: &ApiVersionName,
    ) -> Result<Organization, PortalError> {
        self.insert_org(ctx, new, Some(version)).await
    }

    /// The body of [`create_org`](Self::create_org) and
    /// [`create_pinned_org`](Self::create_pinned_org).
    async fn insert_org(
        &self,
        ctx: &RequestContext,
        new: NewOrg,
        version: Option<&ApiVersionName>,
    ) -> Result<Organization, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "tenancy.org.create");
        let result = async {
            self.decide_platform(ctx, perm::ORGS_CREATE)?;
            let owner = match (ctx.principal(), new.owner) {
                (Principal::User(me), None) => *me,
                (Principal::User(me), Some(owner)) if owner == *me => owner,
                (Principal::User(_), Some(_)) => {
                    return Err(PortalError::invalid_field(
                        "owner",
                        "a user can only create an org they own",
                    ));
                }
                (Principal::Service(_), Some(owner)) => owner,
                (Principal::Service(_), None) => {
                    return Err(PortalError::invalid_field(
                        "owner",
                        "a service must name the new org's owner",
                    ));
                }
                (Principal::ApiKey { .. }, _) => return Err(denied()),
            };
            let org = Organization {
                id: OrgId::generate(&*self.ids, ctx.now()),
                slug: Slug::new(&new.slug)?,
                name: OrgName::new(&new.name)?,
                metadata: Metadata::new(new.metadata)?,
                created_at: ctx.now(),
            };
            let membership = Membership {
                org: org.id,
                user: owner,
                roles: RoleSet::one(RoleName::owner()),
                created_at: ctx.now(),
                updated_at: ctx.now(),
            };
            match version {
                Some(version) => self.store.create_pinned_org(&org, &membership, version).await?,
                None => self.store.create_org(&org, &membership).await?,
            }
            Ok(org)
        }
        .await;
        let org = result.as_ref().ok().map(|o| o.id);
        op.in_org_or_context(org)
            .finish(&result, |o| json!({ "org": o.id, "slug": o.slug }));
        result
    }

    /// Reads an organization. Asks `org read`.
    ///
    /// # Errors
    ///
    /// `org.not_found` (also when the actor is not a member); `access.denied`; `storage.*`.
    pub async fn get_org(&self, ctx: &RequestContext, org: OrgId) -> Result<Organization, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "tenancy.org.read");
        let result = async {
            self.authorize(ctx, org, perm::ORG_READ).await?;
            self.store.get_org(org).await?.ok_or_else(org_not_found)
        }
        .await;
        op.in_org(org).finish(&result, |_| json!({}));
        result
    }

    /// Changes an organization's name or metadata. Asks `org write`. A change is audited
    /// (`org.updated`, with the old and new name and the metadata keys that changed) in
    /// its transaction; an update that changes nothing writes nothing.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`name`, `metadata`);
    /// `storage.*`.
    pub async fn update_org(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        update: OrgUpdate,
    ) -> Result<Organization, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "tenancy.org.update");
        let result = async {
            self.authorize(ctx, org, perm::ORG_WRITE).await?;
            let name = update.name.as_deref().map(OrgName::new).transpose()?;
            let metadata = update.metadata.map(Metadata::new).transpose()?;
            let before = self.store.get_org(org).await?.ok_or_else(org_not_found)?;
            let mut after = before.clone();
            if let Some(name) = name {
                after.name = name;
            }
            if let Some(metadata) = metadata {
                after.metadata = metadata;
            }
            let Some(change) = org_change(&before, &after) else {
                return Ok(before);
            };
            let event = self
                .audit_event(ctx, org, actions::ORG_UPDATED)
                .await?
                .target(AuditTarget::new("organization", org))
                .metadata(change);
            self.store.update_org(&after, &event).await?;
            Ok(after)
        }
        .await;
        op.in_org(org).finish(&result, |o| json!({ "name": o.name }));
        result
    }

    /// Invites `email` to join `org` with `roles`, and returns the invitation with its
    /// token. The token is shown this once: only its hash is stored. Asks
    /// `invitations create`, and `roles/<r> assign` for every role offered.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`email`, or `roles`
    /// for a support role, which only a support access grant gives);
    /// `member.already_member` if that address already belongs to a member; `storage.*`.
    pub async fn invite(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        email: &str,
        roles: RoleSet,
    ) -> Result<(Invitation, InvitationToken), PortalError> {
        let op = self
            .gate
            .begin(ctx, EventKind::TenancyChange, "tenancy.invitation.create");
        let result = async {
            let actor_roles = self.authorize(ctx, org, perm::INVITATIONS_CREATE).await?;
            for role in roles.iter() {
                self.decide_role_assign(ctx, org, &actor_roles, role)?;
            }
            refuse_grant_only_roles(roles.iter())?;
            let email = Email::new(email)?;
            if let Some(user) = self.store.find_user_by_email(&email).await?
                && self.store.get_membership(org, user.id).await?.is_some()
            {
                return Err(
                    PortalError::new(ErrorCode::AlreadyMember, "that address already belongs to a member")
                        .with_param("email"),
                );
            }
            let token = InvitationToken::generate()?;
            let invitation = Invitation {
                id: InvitationId::generate(&*self.ids, ctx.now()),
                org,
                email,
                roles,
                invited_by: ctx.principal().clone(),
                created_at: ctx.now(),
                expires_at: ctx.now() + self.config.invitation_ttl,
                state: InvitationState::Pending,
                token_hash: token.hash(),
            };
            let event = self
                .audit_event(ctx, org, actions::INVITATION_CREATED)
                .await?
                .target(AuditTarget::new("invitation", invitation.id))
                .metadata(json!({
                    "email": invitation.email,
                    "roles": invitation.roles,
                    "expires_at": rfc3339(invitation.expires_at),
                }));
            self.store.create_invitation(&invitation, &event).await?;
            Ok((invitation, token))
        }
        .await;
        op.in_org(org).finish(
            &result,
            |(i, _)| json!({ "invitation": i.id, "roles": i.roles, "expires_at": i.expires_at.unix_timestamp() }),
        );
        result
    }

    /// Accepts an invitation for the signed-in user, whose email must be the one invited.
    /// The user joins the org with the invitation's roles (added to any they hold). Asks
    /// `invitations accept` in the platform domain.
    ///
    /// # Errors
    ///
    /// `access.denied` if the actor is not a user; `invitation.not_found` (unknown or
    /// malformed token); `invitation.email_mismatch`; `invitation.already_used`;
    /// `invitation.revoked`; `invitation.expired`; `user.not_found`; `storage.*`.
    pub async fn accept_invitation(
        &self,
        ctx: &RequestContext,
        token: &InvitationToken,
    ) -> Result<Membership, PortalError> {
        let op = self
            .gate
            .begin(ctx, EventKind::TenancyChange, "tenancy.invitation.accept");
        let mut org = None;
        let result = async {
            let Principal::User(me) = ctx.principal() else {
                return Err(PortalError::new(
                    ErrorCode::AccessDenied,
                    "only a signed-in user can accept an invitation",
                ));
            };
            self.decide_platform(ctx, perm::INVITATIONS_ACCEPT)?;
            let invitation = self
                .store
                .find_invitation_by_token(&token.hash())
                .await?
                .filter(|i| i.token_hash.ct_eq(&token.hash()))
                .ok_or_else(|| PortalError::new(ErrorCode::InvitationNotFound, "no such invitation"))?;
            org = Some(invitation.org);
            let user = self
                .store
                .get_user(*me)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "user not found"))?;
            if user.email != invitation.email {
                return Err(PortalError::new(
                    ErrorCode::InvitationEmailMismatch,
                    "this invitation was sent to another email address",
                ));
            }
            check_pending(&invitation, ctx)?;
            let event = AuditEvent::new(
                ctx,
                &*self.ids,
                invitation.org,
                actions::INVITATION_ACCEPTED,
                AuditActor::new(ctx.principal(), Some(user.display_name.to_string())),
            )
            .target(AuditTarget::new("invitation", invitation.id))
            .target(AuditTarget::new("user", user.id))
            .metadata(json!({ "roles": invitation.roles }));
            Ok(self
                .store
                .accept_invitation(invitation.id, *me, ctx.now(), &event)
                .await?)
        }
        .await;
        op.in_org_or_context(org)
            .finish(&result, |m| json!({ "user": m.user, "roles": m.roles }));
        result
    }

    /// The pending invitation of `token`, for whoever holds the token (it was mailed to
    /// the invited address): used to create the account of an invited address that has
    /// none before accepting the invitation as that account.
    ///
    /// # Errors
    ///
    /// `invitation.not_found` (unknown token); `invitation.already_used`;
    /// `invitation.revoked`; `invitation.expired`; `storage.*`.
    pub async fn pending_invitation(
        &self,
        ctx: &RequestContext,
        token: &InvitationToken,
    ) -> Result<Invitation, PortalError> {
        let invitation = self
            .store
            .find_invitation_by_token(&token.hash())
            .await?
            .filter(|i| i.token_hash.ct_eq(&token.hash()))
            .ok_or_else(|| PortalError::new(ErrorCode::InvitationNotFound, "no such invitation"))?;
        check_pending(&invitation, ctx)?;
        Ok(invitation)
    }

    /// Revokes a pending invitation. Asks `invitations delete`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `invitation.not_found` (also for an invitation of
    /// another org); `invitation.already_used`; `invitation.revoked`; `storage.*`.
    pub async fn revoke_invitation(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Invitation, PortalError> {
        let op = self
            .gate
            .begin(ctx, EventKind::TenancyChange, "tenancy.invitation.revoke");
        let result = async {
            self.authorize(ctx, org, perm::INVITATIONS_DELETE).await?;
            let invitation = self
                .store
                .get_invitation(org, id)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::InvitationNotFound, "no such invitation"))?;
            match invitation.state {
                InvitationState::Pending => {}
                InvitationState::Accepted { .. } => {
                    return Err(PortalError::new(
                        ErrorCode::InvitationUsed,
                        "the invitation was already accepted",
                    ));
                }
                InvitationState::Revoked { .. } => {
                    return Err(PortalError::new(
                        ErrorCode::InvitationRevoked,
                        "the invitation was already revoked",
                    ));
                }
            }
            let event = self
                .audit_event(ctx, org, actions::INVITATION_REVOKED)
                .await?
                .target(AuditTarget::new("invitation", id))
                .metadata(json!({ "email": invitation.email }));
            Ok(self.store.revoke_invitation(org, id, ctx.now(), &event).await?)
        }
        .await;
        op.in_org(org).finish(&result, |i| json!({ "invitation": i.id }));
        result
    }

    /// Lists an org's invitations, oldest first. Asks `invitations read`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_invitations(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        page: &PageRequest,
    ) -> Result<Page<Invitation>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "tenancy.invitation.list");
        let result = async {
            self.authorize(ctx, org, perm::INVITATIONS_READ).await?;
            let size = page.size()?;
            let after = decode_cursor::<InvitationId>(page)?;
            let items = self.store.list_invitations(org, after, size + 1).await?;
            Ok(Page::from_overfetch(items, size, |i| i.id.to_string()))
        }
        .await;
        op.in_org(org).finish(&result, |p| json!({ "count": p.items.len() }));
        result
    }

    /// Lists an org's members in a stable order (by user id). Asks `members read`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_members(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        page: &PageRequest,
    ) -> Result<Page<Membership>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "tenancy.member.list");
        let result = async {
            self.authorize(ctx, org, perm::MEMBERS_READ).await?;
            let size = page.size()?;
            let after = decode_cursor::<UserId>(page)?;
            let items = self.store.list_members(org, after, size + 1).await?;
            Ok(Page::from_overfetch(items, size, |m| m.user.to_string()))
        }
        .await;
        op.in_org(org).finish(&result, |p| json!({ "count": p.items.len() }));
        result
    }

    /// [`list_members`](Self::list_members), each membership with its user (name and
    /// email), in one store read a page. Asks `members read`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_member_users(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        page: &PageRequest,
    ) -> Result<Page<(Membership, User)>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "tenancy.member.list");
        let result = async {
            self.authorize(ctx, org, perm::MEMBERS_READ).await?;
            let size = page.size()?;
            let after = decode_cursor::<UserId>(page)?;
            let items = self.store.list_member_users(org, after, size + 1).await?;
            Ok(Page::from_overfetch(items, size, |(m, _)| m.user.to_string()))
        }
        .await;
        op.in_org(org).finish(&result, |p| json!({ "count": p.items.len() }));
        result
    }

    /// Reads one member. Asks `members read`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `storage.*`.
    pub async fn get_member(&self, ctx: &RequestContext, org: OrgId, user: UserId) -> Result<Membership, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "tenancy.member.read");
        let result = async {
            self.authorize(ctx, org, perm::MEMBERS_READ).await?;
            self.member(org, user).await
        }
        .await;
        op.in_org(org).finish(&result, |m| json!({ "user": m.user }));
        result
    }

    /// Replaces a member's roles. Asks `members write`, and `roles/<r> assign` for every
    /// role added or taken away.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `member.last_owner` if the
    /// org's only owner would stop being one; `validation.invalid_field` (`roles`) for a
    /// support role added (support roles come only from a support access grant);
    /// `storage.*`.
    pub async fn set_member_roles(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user: UserId,
        roles: RoleSet,
    ) -> Result<Membership, PortalError> {
        self.change_member_roles(ctx, org, user, |_| Ok(roles.into())).await
    }

    /// [`set_member_roles`](Self::set_member_roles) with the new roles worked out from the
    /// member's current ones by `change`, which may refuse (such as `role.not_found` for
    /// a role to take that the member does not hold). `change` runs once `members write`
    /// was allowed, and the result is validated ([`RoleSet::new`]) only once every
    /// `roles/<r> assign` it asks was allowed: a caller who may not change roles gets
    /// `access.denied`, never a validation error about someone else's membership.
    ///
    /// # Errors
    ///
    /// As `set_member_roles`, and what `change` answers.
    pub(crate) async fn change_member_roles(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user: UserId,
        change: impl FnOnce(&RoleSet) -> Result<BTreeSet<RoleName>, PortalError>,
    ) -> Result<Membership, PortalError> {
        let op = self
            .gate
            .begin(ctx, EventKind::TenancyChange, "tenancy.member.set_roles");
        let mut before = None;
        let result = async {
            let actor_roles = self.authorize(ctx, org, perm::MEMBERS_WRITE).await?;
            let current = self.member(org, user).await?;
            // Authorization before validation: the roles are checked as asked for, and
            // only an actor allowed to make the change learns whether it is valid.
            let wanted = change(&current.roles)?;
            let current_set: BTreeSet<RoleName> = current.roles.iter().cloned().collect();
            for role in wanted.symmetric_difference(&current_set) {
                self.decide_role_assign(ctx, org, &actor_roles, role)?;
            }
            let roles = RoleSet::new(wanted)?;
            // Taking a support role away (from data older than this rule) stays possible.
            refuse_grant_only_roles(roles.difference(&current.roles))?;
            before = Some(current.roles.clone());
            let event = self
                .audit_event(ctx, org, actions::MEMBER_ROLES_CHANGED)
                .await?
                .target(AuditTarget::new("user", user))
                .metadata(json!({ "before": current.roles, "after": roles }));
            Ok(self
                .store
                .set_member_roles(org, user, &roles, ctx.now(), &event)
                .await?)
        }
        .await;
        op.in_org(org).finish(
            &result,
            |m| json!({ "user": m.user, "before": before, "after": m.roles }),
        );
        result
    }

    /// Removes a member and all their roles. Asks `members delete`, and
    /// `roles/owner assign` to remove an owner.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `member.last_owner` for the
    /// org's only owner; `storage.*`.
    pub async fn remove_member(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user: UserId,
    ) -> Result<Membership, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "tenancy.member.remove");
        let result = async {
            let actor_roles = self.authorize(ctx, org, perm::MEMBERS_DELETE).await?;
            let current = self.member(org, user).await?;
            if current.roles.has_owner() {
                self.decide_role_assign(ctx, org, &actor_roles, &RoleName::owner())?;
            }
            let event = self
                .audit_event(ctx, org, actions::MEMBER_REMOVED)
                .await?
                .target(AuditTarget::new("user", user))
                .metadata(json!({ "roles": current.roles }));
            Ok(self.store.remove_member(org, user, &event).await?)
        }
        .await;
        op.in_org(org)
            .finish(&result, |m| json!({ "user": m.user, "roles": m.roles }));
        result
    }

    /// A page of the organizations `user` belongs to, with their roles, by org id: a user
    /// in many orgs is read page by page with the `next` cursor (the last org id read). A
    /// user may list their own (`self/orgs read`); listing someone else's asks
    /// `users/orgs read` in the platform domain.
    ///
    /// # Errors
    ///
    /// `access.denied`; `validation.invalid_field` (`limit`, `cursor`); `storage.*`.
    pub async fn list_user_orgs(
        &self,
        ctx: &RequestContext,
        user: UserId,
        page: &PageRequest,
    ) -> Result<Page<UserOrg>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "tenancy.user.orgs");
        let result = async {
            let wanted = if ctx.principal().user() == Some(user) {
                perm::SELF_READ
            } else {
                perm::USERS_READ
            };
            self.decide_platform(ctx, wanted)?;
            let size = page.size()?;
            let after = decode_cursor::<OrgId>(page)?;
            let rows = self.store.list_user_orgs(user, after, size + 1).await?;
            let orgs = rows
                .into_iter()
                .map(|(org, membership)| UserOrg { org, membership })
                .collect();
            Ok(Page::from_overfetch(orgs, size, |o: &UserOrg| o.org.id.to_string()))
        }
        .await;
        op.in_org_or_context(None).finish(
            &result,
            |orgs: &Page<UserOrg>| json!({ "user": user, "count": orgs.items.len() }),
        );
        result
    }

    /// The audit event `entry` in `org` for this request, its actor shown as they are
    /// now (a user's display name; other principals by id alone).
    pub(crate) async fn audit_event(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        entry: CatalogEntry,
    ) -> Result<AuditEvent, PortalError> {
        let name = match ctx.principal() {
            Principal::User(user) => self.store.get_user(*user).await?.map(|u| u.display_name.to_string()),
            Principal::ApiKey { .. } | Principal::Service(_) => None,
        };
        let actor = AuditActor::new(ctx.principal(), name);
        Ok(AuditEvent::new(ctx, &*self.ids, org, entry, actor))
    }

    async fn member(&self, org: OrgId, user: UserId) -> Result<Membership, PortalError> {
        self.store
            .get_membership(org, user)
            .await?
            .ok_or_else(|| PortalError::new(ErrorCode::MemberNotFound, "member not found"))
    }

    /// The actor's roles in `org` after `permission` was allowed there; an actor who cannot
    /// reach the org gets `org.not_found`.
    async fn authorize(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        permission: Permission,
    ) -> Result<Vec<RoleName>, PortalError> {
        self.gate.authorize(ctx, org, permission, org_not_found).await
    }

    fn decide_role_assign(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        actor_roles: &[RoleName],
        role: &RoleName,
    ) -> Result<(), PortalError> {
        let object = format!("roles/{role}");
        self.gate
            .decide(ctx, Domain::Org(org), actor_roles, &object, perm::ROLE_ASSIGN_ACTION)
    }

    fn decide_platform(&self, ctx: &RequestContext, permission: Permission) -> Result<(), PortalError> {
        self.gate
            .decide(ctx, Domain::Platform, &[], permission.object, permission.action)
    }
}

/// `at` in RFC 3339, as the audit log's metadata writes times.
fn rfc3339(at: time::OffsetDateTime) -> Option<String> {
    at.format(&time::format_description::well_known::Rfc3339).ok()
}

fn check_pending(invitation: &Invitation, ctx: &RequestContext) -> Result<(), PortalError> {
    match invitation.state {
        InvitationState::Accepted { .. } => Err(PortalError::new(
            ErrorCode::InvitationUsed,
            "the invitation was already accepted",
        )),
        InvitationState::Revoked { .. } => Err(PortalError::new(
            ErrorCode::InvitationRevoked,
            "the invitation was revoked",
        )),
        InvitationState::Pending if ctx.now() >= invitation.expires_at => Err(PortalError::new(
            ErrorCode::InvitationExpired,
            "the invitation has expired",
        )),
        InvitationState::Pending => Ok(()),
    }
}

fn decode_cursor<T: std::str::FromStr>(page: &PageRequest) -> Result<Option<T>, PortalError> {
    page.after
        .as_ref()
        .map(|cursor| {
            cursor
                .as_str()
                .parse()
                .map_err(|_| PortalError::invalid_field("cursor", "the cursor is not one this listing returned"))
        })
        .transpose()
}
