//! `ScimService`: SCIM provisioning applied to tenancy (memberships and roles).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;

use super::{Lookup, ScimGroup, ScimProfile, ScimStore, ScimUser, check_text};
use crate::access::RoleName;
use crate::access::permissions as perm;
use crate::audit::{AuditActor, AuditEvent, AuditTarget, CatalogEntry, actions};
use crate::context::RequestContext;
use crate::diagnostics::EventKind;
use crate::error::{ErrorCode, PortalError};
use crate::gate::Gate;
use crate::identity::SessionStore;
use crate::ids::{GroupId, IdGenerator, OrgId, UserId};
use crate::store::{Conflict, StoreError};
use crate::tenancy::{DisplayName, Email, Membership, RoleSet, TenancyStore, User};

/// A user as the directory sends it on create or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewScimUser {
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `active` (SCIM's default is `true`).
    pub active: bool,
    /// Name, display name and emails.
    pub profile: ScimProfile,
}

/// A group as the directory sends it on create or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewScimGroup {
    /// `displayName`.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// The members' SCIM ids (portal user ids), each a SCIM user of the org.
    pub members: Vec<UserId>,
}

/// Provisions an org's users and groups from its directory, and keeps tenancy in step.
///
/// - **Users.** Creating a SCIM user links the portal user with the same email address
///   (the primary email, else the `userName`) or creates one, and makes it a member of
///   the org (role `member`, plus what its groups map to); a user who already was a
///   member keeps its roles. `active: false` removes the membership and revokes the
///   user's sessions; `active: true` restores the membership (`member`, plus what its
///   groups map to). Deleting the SCIM user removes its membership.
/// - **Roles.** The roles an org maps its groups to ([`set_group_roles`](Self::set_group_roles))
///   are the roles SCIM manages: an active member holds exactly the mapped roles of its
///   groups, besides any role no group maps (kept as given by hand, so an owner stays an
///   owner), and `member` when that leaves nothing. Every membership change recomputes
///   the roles of the users it touches at once, and the last-owner rule of the tenancy
///   store still refuses a change that would leave the org without an owner.
///
/// Every operation asks `scim provision` in the org (an owner, or an API key with that
/// scope) through the [`Gate`] before it validates anything, and an org the caller
/// cannot reach answers `org.not_found`; a user or group of another org is
/// `scim.user_not_found` / `scim.group_not_found`, as a missing one. Each operation is
/// recorded (`scim.*` operations, `tenancy_change` events).
///
/// An operation writes the SCIM store and the tenancy store one after the other (they
/// are separate ports): tenancy first when a rule there may refuse (the last owner), so a
/// refusal changes nothing. If the second write fails, the directory's retry (SCIM
/// clients retry) recomputes the membership from the SCIM records and converges.
#[derive(Clone)]
pub struct ScimService {
    store: Arc<dyn ScimStore>,
    tenancy: Arc<dyn TenancyStore>,
    sessions: Option<Arc<dyn SessionStore>>,
    gate: Gate,
    ids: Arc<dyn IdGenerator>,
}

impl std::fmt::Debug for ScimService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimService")
            .field("revokes_sessions", &self.sessions.is_some())
            .finish_non_exhaustive()
    }
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

fn user_not_found() -> PortalError {
    PortalError::new(ErrorCode::ScimUserNotFound, "SCIM user not found")
}

fn group_not_found() -> PortalError {
    PortalError::new(ErrorCode::ScimGroupNotFound, "SCIM group not found")
}

/// The `member` role every provisioned member holds when no group gives it another.
fn base_role() -> RoleName {
    RoleName::member()
}

impl ScimService {
    /// Assembles the service. `sessions` is where a deprovisioned user's sessions are
    /// revoked; a host without sessions passes `None`.
    pub fn new(
        store: Arc<dyn ScimStore>,
        tenancy: Arc<dyn TenancyStore>,
        sessions: Option<Arc<dyn SessionStore>>,
        gate: Gate,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            store,
            tenancy,
            sessions,
            gate,
            ids,
        }
    }

    async fn authorize(&self, ctx: &RequestContext, org: OrgId) -> Result<(), PortalError> {
        self.gate
            .authorize(ctx, org, perm::SCIM_PROVISION, org_not_found)
            .await
            .map(drop)
    }

    /// Provisions a user: links the portal user with its email address or creates one,
    /// stores the SCIM user (version 1) and, when active, makes it a member of the org.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`userName`,
    /// `externalId`, `emails.value`, `name.*`, `displayName`); `scim.uniqueness` for a
    /// taken `userName` or `externalId`, or a portal user already provisioned in the org;
    /// `storage.*`.
    pub async fn create_user(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        new: NewScimUser,
    ) -> Result<ScimUser, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "scim.user.create");
        let mut linked = false;
        let result = async {
            self.authorize(ctx, org).await?;
            let email = check_user(&new)?;
            let portal_user = match self.tenancy.find_user_by_email(&email).await? {
                Some(user) => {
                    linked = true;
                    user
                }
                None => self.create_portal_user(ctx, &new, email).await?,
            };
            let user = ScimUser {
                org,
                user: portal_user.id,
                user_name: new.user_name,
                external_id: new.external_id,
                active: new.active,
                profile: new.profile,
                version: 1,
                created_at: ctx.now(),
                updated_at: ctx.now(),
            };
            self.store.create_user(&user).await?;
            if user.active {
                self.sync_member(ctx, org, user.user, &BTreeSet::new()).await?;
            }
            Ok(user)
        }
        .await;
        op.in_org(org).finish(
            &result,
            |u| json!({ "user": u.user, "linked": linked, "active": u.active }),
        );
        result
    }

    /// Makes the portal user a new SCIM user names, or finds the one a concurrent call made.
    async fn create_portal_user(
        &self,
        ctx: &RequestContext,
        new: &NewScimUser,
        email: Email,
    ) -> Result<User, PortalError> {
        let user = User {
            id: UserId::generate(&*self.ids, ctx.now()),
            display_name: display_name_of(new)?,
            email,
            created_at: ctx.now(),
        };
        match self.tenancy.create_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(Conflict::EmailTaken)) => self
                .tenancy
                .find_user_by_email(&user.email)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::StorageFailure, "the user vanished while being linked")),
            Err(err) => Err(err.into()),
        }
    }

    /// The SCIM user `user` of `org`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `scim.user_not_found`; `storage.*`.
    pub async fn get_user(&self, ctx: &RequestContext, org: OrgId, user: UserId) -> Result<ScimUser, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "scim.user.get");
        let result = async {
            self.authorize(ctx, org).await?;
            self.store.get_user(org, user).await?.ok_or_else(user_not_found)
        }
        .await;
        op.in_org(org).finish(&result, |u| json!({ "user": u.user }));
        result
    }

    /// Up to `limit` SCIM users of `org` after `after`, by id.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn list_users(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<ScimUser>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "scim.user.list");
        let result = async {
            self.authorize(ctx, org).await?;
            Ok(self.store.list_users(org, after, limit).await?)
        }
        .await;
        op.in_org(org).finish(&result, |users| json!({ "count": users.len() }));
        result
    }

    /// Up to `limit` SCIM users of `org` that `lookup` finds (through the store's index),
    /// after `after`, by id.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn find_users(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        lookup: &Lookup,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<ScimUser>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "scim.user.lookup");
        let result = async {
            self.authorize(ctx, org).await?;
            Ok(self.store.find_users(org, lookup, after, limit).await?)
        }
        .await;
        op.in_org(org).finish(&result, |users| json!({ "count": users.len() }));
        result
    }

    /// The SCIM user of `org` whose `userName` is `user_name` (ignoring case), if any.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn find_user_by_user_name(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user_name: &str,
    ) -> Result<Option<ScimUser>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "scim.user.find");
        let result = async {
            self.authorize(ctx, org).await?;
            Ok(self.store.find_user_by_user_name(org, user_name).await?)
        }
        .await;
        op.in_org(org).finish(&result, |u| json!({ "found": u.is_some() }));
        result
    }

    /// Replaces a user's attributes (a SCIM `PUT`, or a `PATCH` applied by the caller).
    /// `expected` is the version the caller read (`If-Match`); `None` replaces whatever
    /// is stored. Going inactive deprovisions: the membership is removed and the user's
    /// sessions revoked (`sessions_revoked` in the event); going active restores the
    /// membership with the roles the user's groups map to.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `scim.user_not_found`; `validation.invalid_field`;
    /// `workflow.version_conflict` (`current_version`) for a stale `expected`;
    /// `scim.uniqueness`; `member.last_owner` when deactivating the org's only owner
    /// (nothing changes); `storage.*`.
    pub async fn replace_user(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user: UserId,
        new: NewScimUser,
        expected: Option<u64>,
    ) -> Result<ScimUser, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "scim.user.replace");
        let mut revoked = None;
        let result = async {
            self.authorize(ctx, org).await?;
            check_user(&new)?;
            let current = self.store.get_user(org, user).await?.ok_or_else(user_not_found)?;
            let expected = expected.unwrap_or(current.version);
            if expected != current.version {
                return Err(StoreError::Conflict(Conflict::Version {
                    expected,
                    current: current.version,
                })
                .into());
            }
            if current.active && !new.active {
                revoked = Some(self.deprovision(ctx, org, user).await?);
            }
            let next = ScimUser {
                user_name: new.user_name,
                external_id: new.external_id,
                active: new.active,
                profile: new.profile,
                updated_at: ctx.now(),
                ..current
            };
            let stored = self.store.replace_user(&next, expected).await?;
            if stored.active {
                self.sync_member(ctx, org, user, &BTreeSet::new()).await?;
            }
            Ok(stored)
        }
        .await;
        op.in_org(org).finish(
            &result,
            |u| json!({ "user": u.user, "active": u.active, "version": u.version, "sessions_revoked": revoked }),
        );
        result
    }

    /// Deletes a SCIM user: removes its membership (and its sessions) and the record; the
    /// portal user itself stays (it may belong to other orgs).
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `scim.user_not_found`; `member.last_owner` for
    /// the org's only owner (nothing changes); `storage.*`.
    pub async fn delete_user(&self, ctx: &RequestContext, org: OrgId, user: UserId) -> Result<ScimUser, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "scim.user.delete");
        let result = async {
            self.authorize(ctx, org).await?;
            let current = self.store.get_user(org, user).await?.ok_or_else(user_not_found)?;
            if current.active {
                self.deprovision(ctx, org, user).await?;
            }
            Ok(self.store.delete_user(org, user).await?)
        }
        .await;
        op.in_org(org).finish(&result, |u| json!({ "user": u.user }));
        result
    }

    /// The audit event `entry` in `org` about member `user`, done by this request's
    /// principal (the directory's token: shown by id, it has no display name).
    fn audit_event(&self, ctx: &RequestContext, org: OrgId, entry: CatalogEntry, user: UserId) -> AuditEvent {
        AuditEvent::new(ctx, &*self.ids, org, entry, AuditActor::new(ctx.principal(), None))
            .target(AuditTarget::new("user", user))
    }

    /// Removes `user`'s membership of `org` (if any) and revokes its sessions; answers how
    /// many sessions were revoked.
    async fn deprovision(&self, ctx: &RequestContext, org: OrgId, user: UserId) -> Result<u64, PortalError> {
        if let Some(current) = self.tenancy.get_membership(org, user).await? {
            let event = self
                .audit_event(ctx, org, actions::MEMBER_REMOVED, user)
                .metadata(json!({ "roles": current.roles }));
            match self.tenancy.remove_member(org, user, &event).await {
                Ok(_) | Err(StoreError::NotFound { entity: "membership" }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        match &self.sessions {
            Some(sessions) => Ok(sessions.revoke_all(user, ctx.now(), None).await?),
            None => Ok(0),
        }
    }

    /// Provisions a group with its members; the roles it maps to start empty (the org's
    /// owner maps them with [`set_group_roles`](Self::set_group_roles)).
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`displayName`,
    /// `externalId`, `members`); `scim.user_not_found` for a member that is no SCIM user of
    /// the org; `scim.uniqueness`; `storage.*`.
    pub async fn create_group(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        new: NewScimGroup,
    ) -> Result<ScimGroup, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "scim.group.create");
        let result = async {
            self.authorize(ctx, org).await?;
            let members = check_group(&new)?;
            let group = ScimGroup {
                org,
                id: GroupId::generate(&*self.ids, ctx.now()),
                display_name: new.display_name,
                external_id: new.external_id,
                members,
                roles: Vec::new(),
                version: 1,
                created_at: ctx.now(),
                updated_at: ctx.now(),
            };
            self.store.create_group(&group).await?;
            Ok(group)
        }
        .await;
        op.in_org(org)
            .finish(&result, |g| json!({ "group": g.id, "members": g.members.len() }));
        result
    }

    /// The group `id` of `org`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `scim.group_not_found`; `storage.*`.
    pub async fn get_group(&self, ctx: &RequestContext, org: OrgId, id: GroupId) -> Result<ScimGroup, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "scim.group.get");
        let result = async {
            self.authorize(ctx, org).await?;
            self.store.get_group(org, id).await?.ok_or_else(group_not_found)
        }
        .await;
        op.in_org(org).finish(&result, |g| json!({ "group": g.id }));
        result
    }

    /// Up to `limit` groups of `org` after `after`, by id.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn list_groups(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "scim.group.list");
        let result = async {
            self.authorize(ctx, org).await?;
            Ok(self.store.list_groups(org, after, limit).await?)
        }
        .await;
        op.in_org(org)
            .finish(&result, |groups| json!({ "count": groups.len() }));
        result
    }

    /// Up to `limit` groups of `org` that `lookup` finds (through the store's index),
    /// after `after`, by id.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn find_groups(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        lookup: &Lookup,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "scim.group.lookup");
        let result = async {
            self.authorize(ctx, org).await?;
            Ok(self.store.find_groups(org, lookup, after, limit).await?)
        }
        .await;
        op.in_org(org)
            .finish(&result, |groups| json!({ "count": groups.len() }));
        result
    }

    /// Replaces a group's name, external id and members (a SCIM `PUT`, or a `PATCH`
    /// applied by the caller); its role mapping stays. The roles of every member who
    /// joined or left are recomputed at once.
    ///
    /// # Errors
    ///
    /// As [`create_group`](Self::create_group), and `scim.group_not_found`,
    /// `workflow.version_conflict` for a stale `expected`, `member.last_owner` when a
    /// leaving member is the org's only owner by this group's mapping.
    pub async fn replace_group(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: GroupId,
        new: NewScimGroup,
        expected: Option<u64>,
    ) -> Result<ScimGroup, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "scim.group.replace");
        let result = async {
            self.authorize(ctx, org).await?;
            let members = check_group(&new)?;
            let current = self.store.get_group(org, id).await?.ok_or_else(group_not_found)?;
            let expected = expected.unwrap_or(current.version);
            let next = ScimGroup {
                display_name: new.display_name,
                external_id: new.external_id,
                members,
                updated_at: ctx.now(),
                ..current.clone()
            };
            let stored = self.store.replace_group(&next, expected).await?;
            let before: BTreeSet<UserId> = current.members.iter().copied().collect();
            let after: BTreeSet<UserId> = stored.members.iter().copied().collect();
            let moved: Vec<UserId> = before.symmetric_difference(&after).copied().collect();
            self.sync_or_revert(ctx, &current, &stored, &moved).await?;
            Ok(stored)
        }
        .await;
        op.in_org(org).finish(
            &result,
            |g| json!({ "group": g.id, "members": g.members.len(), "version": g.version }),
        );
        result
    }

    /// Deletes a group; its members lose the roles it mapped them to (unless another
    /// group maps them too).
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `scim.group_not_found`; `member.last_owner`;
    /// `storage.*`.
    pub async fn delete_group(&self, ctx: &RequestContext, org: OrgId, id: GroupId) -> Result<ScimGroup, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "scim.group.delete");
        let result = async {
            self.authorize(ctx, org).await?;
            let removed = self.store.delete_group(org, id).await?;
            let mapped: BTreeSet<RoleName> = removed.roles.iter().cloned().collect();
            for user in &removed.members {
                if let Err(err) = self.sync_member(ctx, org, *user, &mapped).await {
                    if err.code() == ErrorCode::LastOwner && self.store.create_group(&removed).await.is_ok() {
                        for user in &removed.members {
                            // Best effort: the group is back, so this restores the roles.
                            let _ = self.sync_member(ctx, org, *user, &mapped).await;
                        }
                    }
                    return Err(err);
                }
            }
            Ok(removed)
        }
        .await;
        op.in_org(org).finish(&result, |g| json!({ "group": g.id }));
        result
    }

    /// Maps a group to `roles` (the org's owner configures it; asks `scim configure`),
    /// and recomputes every member's roles at once.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`roles`: more than
    /// [`RoleSet::MAX`] roles); `scim.group_not_found`; `workflow.version_conflict` when
    /// the group changed meanwhile; `member.last_owner`; `storage.*`.
    pub async fn set_group_roles(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: GroupId,
        roles: Vec<RoleName>,
    ) -> Result<ScimGroup, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "scim.group.set_roles");
        let result = async {
            self.gate
                .authorize(ctx, org, perm::SCIM_CONFIGURE, org_not_found)
                .await?;
            let roles: BTreeSet<RoleName> = roles.into_iter().collect();
            if roles.len() > RoleSet::MAX {
                return Err(PortalError::invalid_field(
                    "roles",
                    format!("a group maps to at most {} roles", RoleSet::MAX),
                ));
            }
            let current = self.store.get_group(org, id).await?.ok_or_else(group_not_found)?;
            let next = ScimGroup {
                roles: roles.into_iter().collect(),
                updated_at: ctx.now(),
                ..current.clone()
            };
            let stored = self.store.replace_group(&next, current.version).await?;
            self.sync_or_revert(ctx, &current, &stored, &stored.members).await?;
            Ok(stored)
        }
        .await;
        op.in_org(org)
            .finish(&result, |g| json!({ "group": g.id, "roles": g.roles }));
        result
    }

    /// Recomputes the roles of `users` after `current` became `stored`. When tenancy
    /// refuses (the last owner would lose `owner`), puts the group back as it was,
    /// recomputes the same users again and answers the refusal, so nothing changed.
    async fn sync_or_revert(
        &self,
        ctx: &RequestContext,
        current: &ScimGroup,
        stored: &ScimGroup,
        users: &[UserId],
    ) -> Result<(), PortalError> {
        let mapped: BTreeSet<RoleName> = current.roles.iter().chain(&stored.roles).cloned().collect();
        for user in users {
            if let Err(err) = self.sync_member(ctx, current.org, *user, &mapped).await {
                if err.code() == ErrorCode::LastOwner {
                    let back = ScimGroup {
                        updated_at: ctx.now(),
                        ..current.clone()
                    };
                    if self.store.replace_group(&back, stored.version).await.is_ok() {
                        for user in users {
                            // Best effort: the group is back, so this restores the roles.
                            let _ = self.sync_member(ctx, current.org, *user, &mapped).await;
                        }
                    }
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Brings `user`'s membership of `org` in line with its SCIM record and groups: an
    /// active user is a member holding its groups' mapped roles: a new membership with
    /// `member` besides them, an existing one keeping the roles no group maps (and
    /// `member` when nothing else is left). `also_mapped` names roles that
    /// were mapped before this change (a group's old mapping, a deleted group's), which
    /// the user loses unless a group still gives them.
    async fn sync_member(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        user: UserId,
        also_mapped: &BTreeSet<RoleName>,
    ) -> Result<(), PortalError> {
        let Some(scim) = self.store.get_user(org, user).await? else {
            return Ok(());
        };
        if !scim.active {
            return Ok(());
        }
        let mut mapped = also_mapped.clone();
        mapped.extend(self.store.mapped_roles(org).await?);
        let given: BTreeSet<RoleName> = self
            .store
            .groups_of(org, user)
            .await?
            .into_iter()
            .flat_map(|g| g.roles)
            .collect();
        match self.tenancy.get_membership(org, user).await? {
            None => {
                // A new membership: `member`, and what the groups map to.
                let mut roles = given;
                roles.insert(base_role());
                let membership = Membership {
                    org,
                    user,
                    roles: RoleSet::new(roles)?,
                    created_at: ctx.now(),
                    updated_at: ctx.now(),
                };
                let event = self
                    .audit_event(ctx, org, actions::MEMBER_ADDED, user)
                    .metadata(json!({ "roles": membership.roles }));
                match self.tenancy.add_member(&membership, &event).await {
                    Ok(()) | Err(StoreError::Conflict(Conflict::AlreadyExists { .. })) => Ok(()),
                    Err(err) => Err(err.into()),
                }
            }
            Some(current) => {
                let mut roles: BTreeSet<RoleName> =
                    current.roles.iter().filter(|r| !mapped.contains(*r)).cloned().collect();
                roles.extend(given);
                if roles.is_empty() {
                    roles.insert(base_role());
                }
                let roles = RoleSet::new(roles)?;
                if roles != current.roles {
                    let event = self
                        .audit_event(ctx, org, actions::MEMBER_ROLES_CHANGED, user)
                        .metadata(json!({ "before": current.roles, "after": roles }));
                    self.tenancy
                        .set_member_roles(org, user, &roles, ctx.now(), &event)
                        .await?;
                }
                Ok(())
            }
        }
    }
}

/// Validates a user's attributes and answers the email address that identifies the
/// portal user: the primary email, else the `userName`.
fn check_user(new: &NewScimUser) -> Result<Email, PortalError> {
    check_text("userName", &new.user_name)?;
    if let Some(external_id) = &new.external_id {
        check_text("externalId", external_id)?;
    }
    new.profile.check()?;
    match new.profile.primary_email() {
        Some(email) => Email::new(email)
            .map_err(|_| PortalError::invalid_field("emails.value", "the primary email is not a valid email address")),
        None => Email::new(&new.user_name).map_err(|_| {
            PortalError::invalid_field(
                "emails",
                "a user needs an email address: in `emails`, or as its `userName`",
            )
        }),
    }
}

/// The display name of a new portal user: `displayName`, `name.formatted`, given and
/// family names, else the `userName`.
fn display_name_of(new: &NewScimUser) -> Result<DisplayName, PortalError> {
    let name = &new.profile.name;
    let joined = [name.given_name.as_deref(), name.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let candidates = [
        new.profile.display_name.clone(),
        name.formatted.clone(),
        Some(joined),
        Some(new.user_name.clone()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|c| DisplayName::new(c.trim()).ok())
        .ok_or_else(|| PortalError::invalid_field("displayName", "no usable display name"))
}

/// Validates a group's attributes and answers its members, sorted and without duplicates.
fn check_group(new: &NewScimGroup) -> Result<Vec<UserId>, PortalError> {
    check_text("displayName", &new.display_name)?;
    if let Some(external_id) = &new.external_id {
        check_text("externalId", external_id)?;
    }
    if new.members.len() > super::MAX_GROUP_MEMBERS {
        return Err(PortalError::invalid_field(
            "members",
            format!("a group holds at most {} members", super::MAX_GROUP_MEMBERS),
        ));
    }
    let members: BTreeSet<UserId> = new.members.iter().copied().collect();
    Ok(members.into_iter().collect())
}
